{
  description = "Perimeter appliances: gwx, avsx, tlsaudit, dbm, keyrotate; NixOS modules, appliance images, VM tests";

  # A NixOS release with Rust >= 1.85 (edition 2024, the workspace's rust-version).
  # `nix flake lock` pins it in flake.lock on the first use (not done here: no network).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      lib = nixpkgs.lib;
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};

      # What the Rust build reads: the workspace (every member's Cargo.toml must be
      # there for cargo to load it) and nothing else, so docs and images do not
      # change the packages' hashes.
      src = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions [
          ./Cargo.toml
          ./Cargo.lock
          ./services
          ./tests
          ./bench
          ./images/builder
        ];
      };

      packagesFor =
        p:
        import ./nix/packages.nix {
          inherit (p)
            lib
            rustPlatform
            pkg-config
            nettle
            gmp
            ;
          inherit src;
        };

      # A module with its package defaulting to this flake's build for the host's system.
      withPackage =
        name: file:
        { pkgs, ... }:
        {
          imports = [ file ];
          config.services.${name}.package =
            lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.${name};
        };

      appliance =
        name:
        lib.nixosSystem {
          modules = [
            { nixpkgs.hostPlatform = system; }
            self.nixosModules.default
            ./nix/appliances/disk.nix
            ./nix/appliances/${name}.nix
          ];
        };

      # A bootable qcow2 disk of an appliance (BIOS, one root partition).
      disk =
        name:
        import "${nixpkgs}/nixos/lib/make-disk-image.nix" {
          inherit pkgs lib;
          inherit (self.nixosConfigurations.${name}) config;
          format = "qcow2";
          partitionTableType = "legacy";
          diskSize = "auto";
          additionalSpace = "256M";
        };

      test = file: pkgs.testers.runNixOSTest (import file { inherit self; });
    in
    {
      packages.${system} =
        let
          services = packagesFor pkgs;
        in
        services
        // {
          default = pkgs.symlinkJoin {
            name = "perimeter-appliances";
            paths = builtins.attrValues services;
          };
        }
        # Appliance images: `nix build .#appliance-gwx-vm && result/bin/run-gwx-vm`, or
        # the qcow2 disk for a hypervisor.
        // lib.listToAttrs (
          lib.concatMap
            (name: [
              (lib.nameValuePair "appliance-${name}-vm" self.nixosConfigurations.${name}.config.system.build.vm)
              (lib.nameValuePair "appliance-${name}-qcow2" (disk name))
            ])
            [
              "gwx"
              "avsx"
              "backend"
            ]
        );

      nixosModules = {
        gwx = withPackage "gwx" ./nix/modules/gwx.nix;
        avsx = withPackage "avsx" ./nix/modules/avsx.nix;
        tlsaudit = withPackage "tlsaudit" ./nix/modules/tlsaudit.nix;
        keyrotate = withPackage "keyrotate" ./nix/modules/keyrotate.nix;
        default = {
          imports = [
            self.nixosModules.gwx
            self.nixosModules.avsx
            self.nixosModules.tlsaudit
            self.nixosModules.keyrotate
          ];
        };
      };

      # The appliances of images/appliances/*.toml as NixOS systems.
      nixosConfigurations = lib.genAttrs [ "gwx" "avsx" "backend" ] appliance;

      # The VM scenarios of issue 10 (`nix flake check`, or
      # `nix build .#checks.x86_64-linux.grid -L`).
      checks.${system} = {
        grid = test ./nix/tests/grid.nix;
        mail = test ./nix/tests/mail.nix;
        rolling = test ./nix/tests/rolling.nix;
      }
      // lib.mapAttrs' (n: p: lib.nameValuePair "package-${n}" p) (packagesFor pkgs);

      formatter.${system} = pkgs.nixfmt-rfc-style;
    };
}
