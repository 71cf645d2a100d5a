# services.avsx: the mail perimeter (`avsx run`) on port 25. The unit's settings come
# from nix/units.nix, the same file images/systemd/avsx.service is rendered from.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.avsx;
  toml = pkgs.formats.toml { };
  shared = import ../units.nix {
    bin = lib.getExe' cfg.package;
    kill = "${pkgs.coreutils}/bin/kill";
    avsx = { inherit (cfg) extraArgs; };
  };
  systemd = import ./systemd.nix { inherit lib; };
  ports = map (l: lib.toInt (lib.last (lib.splitString ":" l))) (cfg.settings.smtp.listen or [ ]);
in
{
  options.services.avsx = {
    enable = lib.mkEnableOption "the avsx mail perimeter (`avsx run`)";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The avsx package (the flake's `packages.<system>.avsx`).";
    };

    settings = lib.mkOption {
      type = toml.type;
      default = { };
      example = lib.literalExpression ''
        {
          smtp = { listen = [ "0.0.0.0:25" ]; hostname = "mx.example.org"; };
          recipients = { domains = [ "example.org" ]; map = "/var/lib/avsx/relay_recipients"; };
          scan = { spamd.address = "127.0.0.1:783"; clamd.address = "127.0.0.1:3310"; };
          relay.address = "10.0.0.25:25";
        }
      '';
      description = ''
        /etc/avsx/avsx.toml (keys: services/avsx/src/config.rs, annotated example:
        config/avsx/avsx.toml). Secrets (TLS key, LDAP password file) stay outside the
        store: point to files readable by group avsx.
      '';
    };

    configFile = lib.mkOption {
      type = lib.types.path;
      default = toml.generate "avsx.toml" cfg.settings;
      defaultText = lib.literalExpression ''(pkgs.formats.toml { }).generate "avsx.toml" config.services.avsx.settings'';
      description = "The config file; overrides `settings`. Installed as /etc/avsx/avsx.toml.";
    };

    extraArgs = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "--log-format=json" ];
      description = "Extra arguments of `avsx run`.";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the TCP ports of `settings.smtp.listen` in networking.firewall.";
    };
  };

  config = lib.mkIf cfg.enable {
    users.users.avsx = {
      isSystemUser = true;
      group = "avsx";
      inherit (shared.users.avsx) description home;
    };
    users.groups.avsx = { };

    environment.etc."avsx/avsx.toml".source = cfg.configFile;
    # `avsx check`, `avsx recipients sync`, `avsx stats` for the operator.
    environment.systemPackages = [ cfg.package ];

    systemd.services.avsx = systemd.service "avsx" shared.units."avsx.service" // {
      # SIGHUP re-reads the recipient map and the certificate, not the config.
      restartTriggers = [ cfg.configFile ];
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall ports;
  };
}
