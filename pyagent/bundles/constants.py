"""Names shared by the bundle modules and the command line, importable without loading any crypto."""

from __future__ import annotations

#: The JWS algorithms a bundle may be signed with (RFC 7518 names, as ``opa build --signing-alg``).
PUBLIC_KEY_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
#: ``opa build`` targets: wasm for the embedded engine, rego for an OPA server (whose build runs no wasm).
TARGETS = ("wasm", "rego")
#: The signature file at a bundle's root.
SIGNATURES_FILE = ".signatures.json"
#: The largest build serial (``metadata.pyagent.serial``): a signed 64-bit integer, as the server's
#: databases store it.
MAX_SERIAL = 2**63 - 1
