// Package medplum starts a real FHIR R4 server for end-to-end tests: Medplum's
// FHIR router over its in-memory repository (npm @medplum/fhir-router 5.2.13),
// served by e2e/medplum/server.mjs on 127.0.0.1.
//
// Use [Start] from a test to get a fresh, empty server that lives until the
// test ends. The server is written by people outside this project, so tests
// that put ChartGuard in front of it check our proxy against real search
// Bundles, versioning, _history and _include rather than our own idea of FHIR.
//
// # Trust boundary
//
// None: the server has no authentication and trusts every request. It binds
// to loopback only and holds nothing but test data. [Start] trusts the node
// modules pinned by e2e/medplum/package-lock.json (npm ci checks integrity).
//
// # Requirements
//
// node (20 or later) and npm on PATH. [Start] fails the test, never skips it,
// when they are missing: CI installs them. The first run in a fresh checkout
// runs "npm ci" once, guarded by a file lock so parallel test binaries do not
// race.
//
// # Out of scope
//
// Performance (search is a linear scan), persistence, FHIR validation, and
// the differences listed at the top of server.mjs (for example, a deleted
// resource reads as 404, not 410).
package medplum
