# services.tlsaudit: a periodic `tlsaudit scan` of a list of targets; the last report is
# /var/lib/tlsaudit/report.<format>. Unit and timer from nix/units.nix, as
# images/systemd/tlsaudit.{service,timer}.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.tlsaudit;
  shared = import ../units.nix {
    bin = lib.getExe' cfg.package;
    kill = "${pkgs.coreutils}/bin/kill";
    tlsaudit = {
      inherit (cfg) format onCalendar extraArgs;
    };
  };
  systemd = import ./systemd.nix { inherit lib; };
in
{
  options.services.tlsaudit = {
    enable = lib.mkEnableOption "periodic tlsaudit scans of `targets`";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The tlsaudit package (the flake's `packages.<system>.tlsaudit`).";
    };

    targets = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      example = [
        "https://www.example.org/"
        "www.example.org:443"
        "smtp://mx.example.org:25"
      ];
      description = ''
        What to audit, one target each (`/etc/tlsaudit/targets`): an http(s) URL (the
        headers), `host:port` (TLS), `smtp://host[:port]` (STARTTLS); `sni=NAME` may
        follow.
      '';
    };

    format = lib.mkOption {
      type = lib.types.enum [
        "json"
        "html"
        "text"
      ];
      default = "json";
      description = "Report format (`--format`); the report is /var/lib/tlsaudit/report.<format>.";
    };

    onCalendar = lib.mkOption {
      type = lib.types.str;
      default = "daily";
      description = "When to scan (systemd.time(7) calendar event).";
    };

    extraArgs = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [
        "--jobs=4"
        "--fail-below=B"
      ];
      description = "Extra arguments of `tlsaudit scan`.";
    };
  };

  config = lib.mkIf cfg.enable {
    environment.etc."tlsaudit/targets".text = lib.concatLines cfg.targets;
    environment.systemPackages = [ cfg.package ];
    systemd.services.tlsaudit = systemd.service "tlsaudit" shared.units."tlsaudit.service";
    systemd.timers.tlsaudit = systemd.timer "tlsaudit" shared.units."tlsaudit.timer";
  };
}
