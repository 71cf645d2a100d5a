# The systemd units of every service, in one place: what runs (ExecStart), as whom,
# with which capabilities, hardening, readiness protocol and reload. Pure Nix (no
# nixpkgs), so that both users of this file see the same settings:
#
#   - the NixOS modules (nix/modules/*.nix) call it with their store paths and options
#     and put each unit's sections into systemd.services.<name> / systemd.timers.<name>;
#   - nix/render-units.nix calls it with the Debian defaults below, and the checked-in
#     images/systemd/* files are rendered from that (images/builder/tests/units.rs
#     fails when they differ, and rewrites them with UPDATE_UNITS=1).
#
# A unit is { Unit = {...}; Service = {...}; Install = {...}; } (or Timer). A value is a
# string, an integer, a bool (yes/no) or a list of strings (one line per element, as
# NixOS writes lists, and systemd merges such lines).
{
  # Absolute path of a service binary. Debian hosts: installed to /usr/local/bin.
  bin ? (name: "/usr/local/bin/${name}"),
  # kill(1) for ExecReload.
  kill ? "/bin/kill",
  # Per-service parameters; every key has a default below.
  gwx ? { },
  avsx ? { },
  tlsaudit ? { },
  keyrotate ? { },
}:
let
  inherit (builtins)
    concatStringsSep
    match
    replaceStrings
    ;

  g = {
    # The grid inventory (the same file on every gateway).
    config = "/etc/gwx/grid.toml";
    # The ban engine's jails.
    jails = "/etc/gwx/bans.toml";
    # Which gateway this host is; null: GWX_GATEWAY from /etc/default/gwx.
    gateway = null;
    environmentFile = "-/etc/default/gwx";
    # Groups whose logs the ban engine reads (Debian: /var/log/* is group adm; the
    # journal needs systemd-journal). NixOS has no adm group.
    bansGroups = [
      "adm"
      "systemd-journal"
    ];
    extraArgs = [ ];
    dnsExtraArgs = [ ];
    bansExtraArgs = [ ];
  }
  // gwx;

  a = {
    config = "/etc/avsx/avsx.toml";
    extraArgs = [ ];
  }
  // avsx;

  t = {
    # One target a line (see `tlsaudit scan --help`).
    targets = "/etc/tlsaudit/targets";
    format = "json";
    onCalendar = "daily";
    extraArgs = [ ];
  }
  // tlsaudit;

  k = {
    config = "/etc/keyrotate/rotation.toml";
    # A rotation retries failed targets and recipients until it is complete.
    onCalendar = "hourly";
    # Paths the run writes besides /var/lib/keyrotate (a WKD tree, say).
    readWritePaths = [ ];
    extraArgs = [ ];
  }
  // keyrotate;

  # systemd's command-line quoting: a word of plain characters stays as it is, any
  # other is double-quoted; % and $ are doubled so systemd takes them literally.
  escape =
    w:
    if match "[A-Za-z0-9_./:=@+,-]+" w != null then
      w
    else
      "\"${
        replaceStrings
          [ "\\" "\"" "%" "$" ]
          [ "\\\\" "\\\"" "%%" "$$" ]
          w
      }\"";
  command = argv: concatStringsSep " " (map escape argv);

  # What every service gets: its own view of the file system (read-only but for its
  # state directory), no way to gain privileges, only the system calls and kernel
  # interfaces a network daemon uses.
  hardening = {
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    RemoveIPC = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [ "@system-service" ];
    SystemCallErrorNumber = "EPERM";
    UMask = "0027";
  };

  # A daemon built on the appliance runtime: READY=1 once it serves (Type=notify),
  # RELOADING=1 and READY=1 around a SIGHUP reload, STOPPING=1 while it drains.
  daemon = {
    Type = "notify";
    ExecReload = "${kill} -HUP $MAINPID";
    Restart = "on-failure";
    RestartSec = "5s";
  };

  # Capabilities: the bounding set and the ambient set are the same, and nothing else.
  caps = cs: {
    CapabilityBoundingSet = if cs == [ ] then "" else concatStringsSep " " cs;
    AmbientCapabilities = if cs == [ ] then "" else concatStringsSep " " cs;
  };

  families = fs: { RestrictAddressFamilies = concatStringsSep " " fs; };

  online = {
    Wants = [ "network-online.target" ];
    After = [ "network-online.target" ];
  };

  multiUser = {
    WantedBy = [ "multi-user.target" ];
  };

  gatewayArgs = if g.gateway == null then [ ] else [ "--gateway=${g.gateway}" ];
  gatewayEnv = if g.gateway == null then { EnvironmentFile = g.environmentFile; } else { };

  gwxCommand = [
    (bin "gwx")
    "--config=${g.config}"
  ];

  nonEmpty = name: list: if list == [ ] then { } else { ${name} = list; };
in
{
  units = {
    # The gateway: proxy listeners, the nftables ruleset (nft runs as a child and
    # inherits CAP_NET_ADMIN), /metrics and /healthz. No raw sockets: no CAP_NET_RAW.
    "gwx.service" = {
      Unit = {
        Description = "gwx DDoS gateway (proxy, nftables ruleset, metrics)";
      }
      // online;
      Service =
        hardening
        // daemon
        // gatewayEnv
        // caps [
          "CAP_NET_ADMIN"
          "CAP_NET_BIND_SERVICE"
        ]
        // families [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
          "AF_NETLINK"
        ]
        // {
          ExecStart = command (gwxCommand ++ gatewayArgs ++ [ "run" ] ++ g.extraArgs);
          DynamicUser = true;
          LimitNOFILE = 1048576;
        };
      Install = multiUser;
    };

    # The grid's authoritative DNS: health checks of every gateway address, answers of
    # healthy ones, drains (rolling upgrades) kept in its state directory.
    "gwx-dns.service" = {
      Unit = {
        Description = "gwx grid DNS (random healthy gateway addresses)";
      }
      // online;
      Service =
        hardening
        // daemon
        // caps [ "CAP_NET_BIND_SERVICE" ]
        // families [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ]
        // {
          ExecStart = command (
            gwxCommand
            ++ [
              "dns"
              "--state-dir=/var/lib/gwx/dns"
              "run"
            ]
            ++ g.dnsExtraArgs
          );
          DynamicUser = true;
          StateDirectory = "gwx/dns";
          LimitNOFILE = 65536;
        };
      Install = multiUser;
    };

    # The ban engine: follows logs (files, or journalctl), bans into the gateway's ban
    # sets with nft (CAP_NET_ADMIN), keeps its state file.
    "gwx-bans.service" = {
      Unit = {
        Description = "gwx ban engine (fail2ban filters, nftables ban sets)";
        After = [ "gwx.service" ];
      };
      Service =
        hardening
        // daemon
        // caps [ "CAP_NET_ADMIN" ]
        // families [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
          "AF_NETLINK"
        ]
        // nonEmpty "SupplementaryGroups" g.bansGroups
        // {
          ExecStart = command (
            gwxCommand
            ++ [
              "bans"
              "--jails=${g.jails}"
              "run"
            ]
            ++ g.bansExtraArgs
          );
          DynamicUser = true;
          StateDirectory = "gwx/bans";
        };
      Install = multiUser;
    };

    # The backend host's ruleset: the service ports only from the gateways. Applied once
    # at boot, before the service behind it starts.
    "gwx-backend-ruleset.service" = {
      Unit = {
        Description = "gwx backend ruleset (service ports only from the gateways)";
        Before = [ "network-pre.target" ];
        Wants = [ "network-pre.target" ];
      };
      Service =
        hardening
        // caps [ "CAP_NET_ADMIN" ]
        // families [
          "AF_UNIX"
          "AF_NETLINK"
        ]
        // {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = command (
            gwxCommand
            ++ [
              "backend-ruleset"
              "--apply"
            ]
          );
          DynamicUser = true;
        };
      Install = multiUser;
    };

    # The mail perimeter on port 25. A dedicated user, so that its TLS key and LDAP
    # password can be made readable to group avsx (and re-read on SIGHUP after a
    # renewal); the recipient map and the verdicts live in /var/lib/avsx.
    "avsx.service" = {
      Unit = {
        Description = "avsx mail perimeter (SMTP, recipients, spamd/clamd before the queue)";
      }
      // online;
      Service =
        hardening
        // daemon
        // caps [ "CAP_NET_BIND_SERVICE" ]
        // families [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ]
        // {
          ExecStart = command (
            [
              (bin "avsx")
              "--config=${a.config}"
              "run"
            ]
            ++ a.extraArgs
          );
          User = "avsx";
          Group = "avsx";
          StateDirectory = "avsx";
          LimitNOFILE = 65536;
        };
      Install = multiUser;
    };

    # tlsaudit is a command, not a daemon: a timer runs a scan of the targets file and
    # keeps the last report in /var/lib/tlsaudit.
    "tlsaudit.service" = {
      Unit = {
        Description = "tlsaudit scan of the configured targets";
      }
      // online;
      Service =
        hardening
        // caps [ ]
        // families [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ]
        // {
          Type = "oneshot";
          ExecStart = command (
            [
              (bin "tlsaudit")
              "scan"
              "--format=${t.format}"
              "--output=/var/lib/tlsaudit/report.${t.format}"
            ]
            ++ t.extraArgs
            ++ [ t.targets ]
          );
          DynamicUser = true;
          StateDirectory = "tlsaudit";
        };
    };
    "tlsaudit.timer" = {
      Unit = {
        Description = "tlsaudit scan, periodically";
      };
      Timer = {
        OnCalendar = t.onCalendar;
        RandomizedDelaySec = "30m";
        Persistent = true;
      };
      Install = {
        WantedBy = [ "timers.target" ];
      };
    };

    # A key rotation: one resumable run; the timer reruns it until it is complete
    # (exit 75 = targets or recipients left; a complete rotation is a no-op). A dedicated
    # user, so that the old keys and passphrases can be made readable to it alone.
    "keyrotate.service" = {
      Unit = {
        Description = "keyrotate OpenPGP key rotation (resumable run)";
      }
      // online;
      Service =
        hardening
        // caps [ ]
        // families [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ]
        // nonEmpty "ReadWritePaths" k.readWritePaths
        // {
          Type = "oneshot";
          ExecStart = command (
            [
              (bin "keyrotate")
              "--config=${k.config}"
              "run"
            ]
            ++ k.extraArgs
          );
          User = "keyrotate";
          Group = "keyrotate";
          StateDirectory = "keyrotate";
          StateDirectoryMode = "0700";
          UMask = "0077";
        };
    };
    "keyrotate.timer" = {
      Unit = {
        Description = "keyrotate: retry an incomplete rotation";
      };
      Timer = {
        OnCalendar = k.onCalendar;
        RandomizedDelaySec = "5m";
      };
      Install = {
        WantedBy = [ "timers.target" ];
      };
    };
  };

  # The dedicated system users (Debian: sysusers.d; NixOS: users.users).
  users = {
    avsx = {
      description = "avsx mail perimeter";
      home = "/var/lib/avsx";
    };
    keyrotate = {
      description = "keyrotate OpenPGP key rotation";
      home = "/var/lib/keyrotate";
    };
  };

  # Kernel modules to load before systemd-sysctl: net.netfilter.* exists only once
  # nf_conntrack is loaded.
  modules = {
    gwx = [ "nf_conntrack" ];
  };
}
