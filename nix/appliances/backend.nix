# The backend test appliance (images/appliances/backend.toml): an HTTP server on 8080
# (busybox httpd, as in the image), and the gwx backend ruleset so that only the
# gateways of the grid reach it.
{
  lib,
  pkgs,
  ...
}:
let
  www = pkgs.runCommand "backend-www" { } ''
    mkdir -p $out
    cp ${../../images/files/backend/index.html} $out/index.html
  '';
in
{
  imports = [ ./common.nix ];

  networking.hostName = lib.mkDefault "backend";
  # The gwx backend ruleset is this host's firewall.
  networking.firewall.enable = false;

  services.gwx = {
    settings = lib.mkDefault (builtins.fromTOML (builtins.readFile ../../images/files/gwx/grid.toml));
    backendRuleset.enable = true;
  };

  systemd.services.web = {
    description = "Test backend: busybox httpd on 8080";
    wantedBy = [ "multi-user.target" ];
    after = [ "gwx-backend-ruleset.service" ];
    requires = [ "gwx-backend-ruleset.service" ];
    serviceConfig = {
      ExecStart = "${pkgs.busybox}/bin/busybox httpd -f -p 8080 -h ${www}";
      DynamicUser = true;
      ProtectSystem = "strict";
      ProtectHome = true;
      PrivateTmp = true;
      NoNewPrivileges = true;
      RestrictAddressFamilies = "AF_INET AF_INET6";
    };
  };
}
