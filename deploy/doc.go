// Package deploy holds the tests of the deployment files at the repository root: Dockerfile, .dockerignore,
// docker-compose.yml and Caddyfile, and the error answers docs/operations.md describes.
//
// The Caddy tests run the real caddy binary (Debian's package caddy) and skip when it is not installed; the
// image test runs the Dockerfile's own go build commands and starts difybot as the image's user.
package deploy
