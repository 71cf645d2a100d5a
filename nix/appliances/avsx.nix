# The avsx mail appliance (images/appliances/avsx.toml): avsx run with the image's
# config (images/files/avsx/avsx.toml: spamd, clamd and the internal server on the
# private segment) and its static recipient map.
{ lib, ... }:
{
  imports = [ ./common.nix ];

  networking.hostName = lib.mkDefault "avsx";

  services.avsx = {
    enable = true;
    settings = builtins.fromTOML (builtins.readFile ../../images/files/avsx/avsx.toml);
    openFirewall = true;
  };
  environment.etc."avsx/relay_recipients".source = ../../images/files/avsx/relay_recipients;
  # /metrics and /healthz (runtime.metrics_listen).
  networking.firewall.allowedTCPPorts = [ 9125 ];
}
