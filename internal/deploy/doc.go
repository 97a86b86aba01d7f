// Package deploy has no code of its own. Its tests check the deployment
// files against the properties docs/deploy.md promises, without a Docker
// engine: they parse the files instead of running them.
//
// The files are docker-compose.yml, .env.example, Dockerfile and
// .dockerignore at the root of the repository, and in examples/deploy the
// init scripts of the two databases, the systemd unit (pgveil.service) and
// the Prometheus alert rules (alerts.yml). The properties include: Metabase
// shares no network with production and its environment names nothing of
// production; every secret comes from .env; host ports are bound to
// 127.0.0.1 except oauth2-proxy's; the image runs as a non-root user and is
// built with the flags CI uses; the alert rules name only metrics that
// pgveil exports (asked of pgveil/replicate/metrics itself).
//
// Each check is a function of the files' text, and a table of mutations
// shows that each one fails when the property it guards is broken.
package deploy
