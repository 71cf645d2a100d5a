# services.gwx: the gwx gateway (`gwx run`), and on the same or other hosts the grid's
# DNS (`gwx dns run`), the ban engine (`gwx bans run`) and the backend host's ruleset
# (`gwx backend-ruleset --apply`). The units' settings come from nix/units.nix, the same
# file the Debian units in images/systemd are rendered from.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.gwx;
  toml = pkgs.formats.toml { };
  shared = import ../units.nix {
    bin = lib.getExe' cfg.package;
    kill = "${pkgs.coreutils}/bin/kill";
    gwx = {
      inherit (cfg) gateway extraArgs;
      dnsExtraArgs = cfg.dns.extraArgs;
      bansExtraArgs = cfg.bans.extraArgs;
      # NixOS has no adm group; logs are in the journal.
      bansGroups = [ "systemd-journal" ];
    };
  };
  systemd = import ./systemd.nix { inherit lib; };
  unit = name: systemd.service name shared.units."${name}.service";
  anyEnabled = cfg.enable || cfg.dns.enable || cfg.bans.enable || cfg.backendRuleset.enable;
  dnsPorts = map (l: lib.toInt (lib.last (lib.splitString ":" l))) (cfg.settings.dns.listen or [ ]);
in
{
  options.services.gwx = {
    enable = lib.mkEnableOption "the gwx DDoS gateway (`gwx run`: proxy, nftables ruleset, metrics)";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The gwx package (the flake's `packages.<system>.gwx`).";
    };

    settings = lib.mkOption {
      type = toml.type;
      default = { };
      example = lib.literalExpression ''
        {
          grid.name = "prod";
          gateway = [ { id = "gw1"; public = [ "203.0.113.11" ]; private = [ "192.0.2.11" ]; } ];
          service = [ { name = "web"; protocol = "tcp"; port = 443; backend = "192.0.2.2:443"; mode = "proxy"; } ];
        }
      '';
      description = ''
        The grid inventory (`/etc/gwx/grid.toml`), the same on every gateway, the DNS
        host and the backend. Keys: services/gwx/README.md and config/gwx/grid.toml.
        gwx rejects unknown keys when it starts.
      '';
    };

    configFile = lib.mkOption {
      type = lib.types.path;
      default = toml.generate "grid.toml" cfg.settings;
      defaultText = lib.literalExpression ''(pkgs.formats.toml { }).generate "grid.toml" config.services.gwx.settings'';
      description = "The inventory file; overrides `settings`. Installed as /etc/gwx/grid.toml.";
    };

    gateway = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "gw1";
      description = "Which gateway of the inventory this host is (`--gateway`); required with `enable`.";
    };

    extraArgs = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "--counter-interval=10" ];
      description = "Extra arguments of `gwx run` (e.g. `--no-ruleset`, `--threads=2`).";
    };

    sysctl.enable = lib.mkOption {
      type = lib.types.bool;
      default = cfg.enable;
      defaultText = lib.literalExpression "config.services.gwx.enable";
      description = ''
        Set the gateway's kernel settings (nix/sysctl.nix: what `gwx sysctl` prints for
        the appliance grid) as `boot.kernel.sysctl` defaults, and load nf_conntrack at
        boot. They depend on the grid: with L3 services set
        `boot.kernel.sysctl."net.ipv4.ip_forward" = 1`, and put your service and
        management ports into `net.ipv4.ip_local_reserved_ports`
        (`gwx --gateway ID sysctl` prints the values for your inventory).
      '';
    };

    dns = {
      enable = lib.mkEnableOption "the grid's authoritative DNS (`gwx dns run`, the inventory's [dns] section)";
      extraArgs = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        description = "Extra arguments of `gwx dns run`.";
      };
      openFirewall = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = "Open the ports of `settings.dns.listen` (UDP and TCP) in networking.firewall.";
      };
    };

    bans = {
      enable = lib.mkEnableOption "the ban engine (`gwx bans run`: fail2ban filters, nftables ban sets)";
      settings = lib.mkOption {
        type = toml.type;
        default = { };
        example = lib.literalExpression ''
          {
            jail = [ {
              name = "sshd";
              filter = "sshd";
              log.journal = [ "_SYSTEMD_UNIT=sshd.service" ];
              maxretry = 5;
              findtime = "10m";
              bantime = "1h";
            } ];
          }
        '';
        description = ''
          The jails file (`/etc/gwx/bans.toml`, services/gwx/BANS.md).
          `bans.state_dir` defaults to /var/lib/gwx/bans (the unit's StateDirectory)
          and `bans.filter_dir` to fail2ban's filter.d.
        '';
      };
      configFile = lib.mkOption {
        type = lib.types.path;
        default = toml.generate "bans.toml" cfg.bans.settings;
        defaultText = lib.literalExpression ''(pkgs.formats.toml { }).generate "bans.toml" config.services.gwx.bans.settings'';
        description = "The jails file; overrides `bans.settings`. Installed as /etc/gwx/bans.toml.";
      };
      extraArgs = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        description = "Extra arguments of `gwx bans run`.";
      };
    };

    backendRuleset.enable = lib.mkEnableOption "the backend host's ruleset at boot (`gwx backend-ruleset --apply`: the service ports only from the gateways)";
  };

  config = lib.mkMerge [
    (lib.mkIf anyEnabled {
      environment.etc."gwx/grid.toml".source = cfg.configFile;
      # `gwx dns drain`, `gwx bans list`, `gwx check` for the operator.
      environment.systemPackages = [ cfg.package ];
    })

    (lib.mkIf cfg.enable {
      assertions = [
        {
          assertion = cfg.gateway != null;
          message = "services.gwx.gateway must say which gateway of the inventory this host is";
        }
      ];
      systemd.services.gwx = unit "gwx" // {
        path = [ pkgs.nftables ];
        # SIGHUP re-reads the inventory (listeners and ruleset; connections and bans kept).
        reloadTriggers = [ cfg.configFile ];
      };
    })

    (lib.mkIf cfg.sysctl.enable {
      boot.kernelModules = shared.modules.gwx;
      boot.kernel.sysctl = lib.mapAttrs (_: lib.mkDefault) (import ../sysctl.nix);
    })

    (lib.mkIf cfg.dns.enable {
      systemd.services.gwx-dns = unit "gwx-dns" // {
        # SIGHUP re-reads the drains only: a changed inventory needs a restart.
        restartTriggers = [ cfg.configFile ];
      };
      networking.firewall.allowedTCPPorts = lib.mkIf cfg.dns.openFirewall dnsPorts;
      networking.firewall.allowedUDPPorts = lib.mkIf cfg.dns.openFirewall dnsPorts;
    })

    (lib.mkIf cfg.bans.enable {
      services.gwx.bans.settings.bans = {
        state_dir = lib.mkDefault "/var/lib/gwx/bans";
        filter_dir = lib.mkDefault "${pkgs.fail2ban}/etc/fail2ban/filter.d";
      };
      assertions = [
        {
          assertion = (cfg.bans.settings.bans.state_dir or "/var/lib/gwx/bans") == "/var/lib/gwx/bans";
          message = "services.gwx.bans.settings.bans.state_dir must be /var/lib/gwx/bans: the unit may write only its StateDirectory";
        }
      ];
      environment.etc."gwx/bans.toml".source = cfg.bans.configFile;
      systemd.services.gwx-bans = unit "gwx-bans" // {
        path = [
          pkgs.nftables
          config.systemd.package
        ];
        reloadTriggers = [
          cfg.configFile
          cfg.bans.configFile
        ];
      };
    })

    (lib.mkIf cfg.backendRuleset.enable {
      systemd.services.gwx-backend-ruleset = unit "gwx-backend-ruleset" // {
        path = [ pkgs.nftables ];
        restartTriggers = [ cfg.configFile ];
      };
    })
  ];
}
