# One package per service binary, each built from the whole workspace with its one
# Cargo.lock (`cargo build --release -p NAME --bin NAME`). The tests are not run here:
# they need real peers in network namespaces (scripts/test runs them).
{
  lib,
  rustPlatform,
  pkg-config,
  nettle,
  gmp,
  src,
}:
let
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package.version;
  package =
    {
      name,
      description,
      nativeBuildInputs ? [ ],
      buildInputs ? [ ],
    }:
    rustPlatform.buildRustPackage {
      pname = name;
      inherit
        version
        src
        nativeBuildInputs
        buildInputs
        ;
      cargoLock.lockFile = ../Cargo.lock;
      cargoBuildFlags = [
        "--package"
        name
        "--bin"
        name
      ];
      doCheck = false;
      meta = {
        inherit description;
        license = lib.licenses.asl20;
        mainProgram = name;
        platforms = lib.platforms.linux;
      };
    };
in
{
  gwx = package {
    name = "gwx";
    description = "DDoS gateway: forwards service traffic to a hidden backend and hardens itself with nftables";
  };
  avsx = package {
    name = "avsx";
    description = "Mail perimeter: accepts mail only for existing recipients, judged by spamd and clamd before the queue";
  };
  tlsaudit = package {
    name = "tlsaudit";
    description = "Grades security headers and TLS, finds the mail clients that break, writes hardened config";
  };
  dbm = package {
    name = "dbm";
    description = "Live MySQL/MariaDB migration with about a second of downtime: a resumable, journaled plan";
  };
  # sequoia-openpgp's Nettle backend: nettle-sys binds Nettle with bindgen (libclang).
  keyrotate = package {
    name = "keyrotate";
    description = "OpenPGP key rotation: new key certified by the old ones, old keys revoked, published and announced";
    nativeBuildInputs = [
      pkg-config
      rustPlatform.bindgenHook
    ];
    buildInputs = [
      nettle
      gmp
    ];
  };
}
