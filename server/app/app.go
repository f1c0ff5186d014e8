// Package app turns a configuration into a running Gatehouse: it maps every
// config.Config value onto the dependencies of server.New (keyring, signing
// keys, password hashing, protocol policy, registration, dev mode's demo) over
// stores the caller opened. `gatehouse serve` and the end-to-end tests both
// build the server through New, so the tests exercise the real wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/server"
	"github.com/gatehouse-idp/gatehouse/server/clients"
	"github.com/gatehouse-idp/gatehouse/server/config"
	"github.com/gatehouse-idp/gatehouse/server/demo"
	"github.com/gatehouse-idp/gatehouse/server/keys"
	"github.com/gatehouse-idp/gatehouse/server/password"
	"github.com/gatehouse-idp/gatehouse/server/registration"
	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/server/users"
	"github.com/gatehouse-idp/gatehouse/server/web"
	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/usercache"
)

// Options are New's settings that are not configuration.
type Options struct {
	// Logger receives every log line. Required.
	Logger *slog.Logger
	// DemoHTTPClient, in dev mode, makes the demo's calls to the issuer
	// (tests pass one; default: the demo's own).
	DemoHTTPClient *http.Client
	// Now is the server's clock (server.Config.Now); time.Now when nil.
	// Tests move it forward to reach retries and leases without sleeping.
	Now func() time.Time
}

// App is an assembled server and the services around it.
type App struct {
	Server  *server.Server
	Keys    *keys.Manager
	Ring    *secrets.Keyring
	Users   *users.Service
	Clients *clients.Service
	// Demo is what dev mode's bootstrap did (alice's password when she was
	// just created: print it once, log it never); nil outside dev mode.
	Demo *demo.Info
}

// New builds the server from cfg (validated by the caller) over stores. In
// dev mode it also creates, or refreshes, the demo user and client.
func New(ctx context.Context, cfg config.Config, stores storage.Stores, opts Options) (*App, error) {
	log := opts.Logger
	if log == nil {
		return nil, errors.New("app: a logger is required")
	}
	// Wrapped once, before any component gets the store: they all share the
	// cache, so a user write through any of them (admin API, users service,
	// login's rehash, the demo) invalidates it for all.
	stores.Durable = usercache.Wrap(stores.Durable, cfg.Users.CacheTTL, 0, opts.Now)
	ring, err := secrets.NewKeyring(cfg.SystemSecrets()...)
	if err != nil {
		return nil, fmt.Errorf("building the system secret keyring: %w", err)
	}
	km, err := keys.New(ctx, stores.Durable, ring, keys.Config{
		Algorithms:     cfg.Keys.Algorithms,
		RotationPeriod: cfg.Keys.RotationPeriod,
		PublishAhead:   cfg.Keys.PublishAhead,
		// A retired key stays published while tokens it signed may still be presented.
		RetireAfter: max(keys.DefaultRetireAfter, cfg.Tokens.AccessTokenLifetime, cfg.Tokens.IDTokenLifetime),
		JWKSMaxAge:  cfg.Keys.JWKSMaxAge,
		RSABits:     cfg.Keys.RSABits,
		Logger:      log.With("component", "keys"),
	})
	if err != nil {
		return nil, err
	}
	hasher, err := password.New(password.Params{
		MemoryKiB:   uint32(cfg.PasswordHash.MemoryKiB),
		Iterations:  uint32(cfg.PasswordHash.Iterations),
		Parallelism: uint8(cfg.PasswordHash.Parallelism),
	})
	if err != nil {
		return nil, err
	}
	a := &App{
		Keys:    km,
		Ring:    ring,
		Users:   users.New(stores.Durable, hasher, log.With("component", "users")),
		Clients: clients.New(stores.Durable, ring, log.With("component", "clients")),
	}

	var demoCfg *server.DemoConfig
	if cfg.Dev {
		info, err := demo.Bootstrap(ctx, demo.Deps{
			Issuer:  cfg.Issuer,
			Users:   a.Users,
			Clients: a.Clients,
			Logger:  log.With("component", "demo"),
		})
		if err != nil {
			return nil, fmt.Errorf("bootstrapping the demo: %w", err)
		}
		a.Demo = &info
		demoCfg = &server.DemoConfig{ClientSecret: info.ClientSecret, HTTPClient: opts.DemoHTTPClient}
	}

	a.Server, err = server.New(server.Config{
		Issuer:    cfg.Issuer,
		Logger:    log,
		Stores:    stores,
		Ring:      ring,
		Keys:      km,
		Passwords: hasher,
		OAuth: server.OAuthConfig{
			AccessTokenLifetime:                cfg.Tokens.AccessTokenLifetime,
			RefreshTokenLifetime:               cfg.Tokens.RefreshTokenLifetime,
			IDTokenLifetime:                    cfg.Tokens.IDTokenLifetime,
			AuthorizeCodeLifetime:              cfg.Tokens.AuthorizeCodeLifetime,
			RefreshGracePeriod:                 cfg.Tokens.RefreshTokenGracePeriod,
			RequirePushedAuthorizationRequests: cfg.OAuth.RequirePushedAuthorizationRequests,
			PKCEPublicClientsOnly:              cfg.OAuth.PKCE == config.PKCEPublicClients,
			EnableImplicit:                     cfg.OAuth.ImplicitEnabled,
			EnableHybrid:                       cfg.OAuth.HybridEnabled,
			RefreshWithoutOfflineAccess:        cfg.OAuth.RefreshWithoutOfflineAccess,
			AllowPrivateJWKSURI:                cfg.Clients.AllowPrivateJWKSURI,
			SigningAlgs:                        km.Algorithms(),
			ClientCacheTTL:                     cfg.Clients.CacheTTL,
		},
		Registration: server.RegistrationConfig{
			Policy:                registration.Policy(cfg.Registration.Policy),
			AccessTokenLifetime:   cfg.Registration.AccessTokenLifetime,
			SecretRotationOverlap: cfg.Registration.SecretRotationOverlap,
			MaxBodyBytes:          cfg.Registration.MaxBodyBytes,
		},
		Demo:                   demoCfg,
		Admin:                  server.AdminConfig{Token: cfg.Admin.Token.Reveal(), Dev: cfg.Dev, PProf: cfg.Admin.PProf},
		AllowPrivateLogoutURIs: cfg.Clients.AllowPrivateJWKSURI,
		MaxBodyBytes:           cfg.HTTP.MaxBodyBytes,
		TemplatesDir:           cfg.UI.TemplatesDir,
		Now:                    opts.Now,
		Brand: web.Brand{
			ProductName: cfg.UI.ProductName,
			LogoURL:     cfg.UI.LogoURL,
			AccentColor: cfg.UI.AccentColor,
		},
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Run runs the background work until ctx ends: signing key rotation and
// replica sync, and back-channel logout delivery.
func (a *App) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var keysErr, logoutErr error
	wg.Go(func() { keysErr = a.Keys.Run(ctx) })
	wg.Go(func() { logoutErr = a.Server.Run(ctx) })
	wg.Wait()
	return errors.Join(keysErr, logoutErr)
}
