# services.keyrotate: one OpenPGP key rotation, run by a timer until it is complete
# (`keyrotate run` is resumable; a complete rotation is a no-op). Unit and timer from
# nix/units.nix, as images/systemd/keyrotate.{service,timer}.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.keyrotate;
  toml = pkgs.formats.toml { };
  shared = import ../units.nix {
    bin = lib.getExe' cfg.package;
    kill = "${pkgs.coreutils}/bin/kill";
    keyrotate = {
      inherit (cfg) onCalendar readWritePaths extraArgs;
    };
  };
  systemd = import ./systemd.nix { inherit lib; };
in
{
  options.services.keyrotate = {
    enable = lib.mkEnableOption "a keyrotate OpenPGP key rotation (`keyrotate run`, retried by a timer)";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The keyrotate package (the flake's `packages.<system>.keyrotate`).";
    };

    settings = lib.mkOption {
      type = toml.type;
      default = { };
      description = ''
        The rotation (`/etc/keyrotate/rotation.toml`; keys: services/keyrotate/src/config.rs,
        annotated example: config/keyrotate/rotation.toml). `output_dir` must be under
        /var/lib/keyrotate. Old keys and passphrases are files readable by user
        keyrotate (never in the store); a key in a GnuPG home: export it to a file first.
      '';
    };

    configFile = lib.mkOption {
      type = lib.types.path;
      default = toml.generate "rotation.toml" cfg.settings;
      defaultText = lib.literalExpression ''(pkgs.formats.toml { }).generate "rotation.toml" config.services.keyrotate.settings'';
      description = "The rotation file; overrides `settings`. Installed as /etc/keyrotate/rotation.toml.";
    };

    onCalendar = lib.mkOption {
      type = lib.types.str;
      default = "hourly";
      description = "When to run (again) until the rotation is complete.";
    };

    readWritePaths = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "/var/www/example.org" ];
      description = "Paths the run writes besides /var/lib/keyrotate, e.g. `publish.wkd.dir`.";
    };

    extraArgs = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      description = "Extra arguments of `keyrotate run`.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/var/lib/keyrotate/" (cfg.settings.output_dir or "/var/lib/keyrotate/");
        message = "services.keyrotate.settings.output_dir must be under /var/lib/keyrotate (the unit's StateDirectory)";
      }
    ];
    users.users.keyrotate = {
      isSystemUser = true;
      group = "keyrotate";
      inherit (shared.users.keyrotate) description home;
    };
    users.groups.keyrotate = { };
    environment.etc."keyrotate/rotation.toml".source = cfg.configFile;
    # `keyrotate plan` and `keyrotate status` for the operator.
    environment.systemPackages = [ cfg.package ];
    systemd.services.keyrotate = systemd.service "keyrotate" shared.units."keyrotate.service";
    systemd.timers.keyrotate = systemd.timer "keyrotate" shared.units."keyrotate.timer";
  };
}
