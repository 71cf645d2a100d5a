# The grid of the VM scenarios (a) and (c), as the image tests build it: two gateways,
# one hidden backend, a DNS host and a client, on two segments:
#
#   vlan 1 (public, 203.0.113.0/24): gw1 .11, gw2 .12, ns .53, client .100
#   vlan 2 (private, 192.0.2.0/24):  gw1 .11, gw2 .12, backend .2, client .100
#
# The client sits on the private segment too, so that "the backend refuses the client"
# is the backend's ruleset at work and not a missing route.
#
# gwx dns runs on a host of its own: `gwx dns run` and `gwx run` both serve the
# inventory's [runtime] metrics_listen, so one host cannot run both with it set.
{ self, lib }:
let
  grid = {
    grid.name = "nixos-test";
    gateway = [
      {
        id = "gw1";
        public = [ "203.0.113.11" ];
        private = [ "192.0.2.11" ];
      }
      {
        id = "gw2";
        public = [ "203.0.113.12" ];
        private = [ "192.0.2.12" ];
      }
    ];
    service = [
      {
        name = "web";
        protocol = "tcp";
        port = 8080;
        backend = "192.0.2.2:8080";
        mode = "proxy";
      }
    ];
    hardening = {
      drop_fragments = true;
      syn_proxy = false;
      ban_timeout_secs = 600;
      management_ports = [
        22
        9100
      ];
    };
    runtime = {
      metrics_listen = "0.0.0.0:9100";
      drain_timeout_secs = 5;
    };
    dns = {
      zone = "grid.test";
      listen = [ "203.0.113.53:53" ];
      nameservers = [ "ns.grid.test" ];
      # One address per answer: the client's connections alternate between gateways.
      answer_count = 1;
      ttl_secs = 1;
      check = {
        port = 8080;
        interval_ms = 500;
        timeout_ms = 400;
        rise = 2;
        fall = 2;
      };
      glue."ns.grid.test" = [ "203.0.113.53" ];
    };
  };

  # Static addresses on the test's vlans; the first vlan is eth1.
  addresses =
    vlans: addrs:
    { pkgs, ... }:
    {
      virtualisation.vlans = vlans;
      networking.useDHCP = false;
      networking.interfaces = lib.listToAttrs (
        lib.imap1 (
          i: a:
          lib.nameValuePair "eth${toString i}" {
            ipv4.addresses = lib.mkForce [
              {
                address = a;
                prefixLength = 24;
              }
            ];
          }
        ) addrs
      );
      environment.systemPackages = [
        pkgs.curl
        pkgs.dnsutils
        pkgs.nftables
        pkgs.openssh
      ];
    };

  gateway =
    id: public: private:
    { ... }:
    {
      imports = [ (addresses [ 1 2 ] [ public private ]) ];
      networking.firewall.enable = false;
      services.gwx = {
        enable = true;
        settings = grid;
        gateway = id;
      };
    };
in
{
  inherit grid gateway addresses;

  nodes = {
    backend =
      { pkgs, ... }:
      {
        imports = [
          ../appliances/backend.nix
          (addresses [ 2 ] [ "192.0.2.2" ])
        ];
        services.gwx.settings = grid;
      };

    ns =
      { ... }:
      {
        imports = [ (addresses [ 1 ] [ "203.0.113.53" ]) ];
        services.gwx = {
          settings = grid;
          dns = {
            enable = true;
            openFirewall = true;
          };
        };
      };

    client =
      { ... }:
      {
        imports = [
          (addresses [
            1
            2
          ] [ "203.0.113.100" "192.0.2.100" ])
        ];
        # Names resolve through the grid's DNS.
        networking.nameservers = [ "203.0.113.53" ];
      };
  };

  defaults = {
    imports = [ self.nixosModules.default ];
  };

  # Python: every host up, every gateway healthy, and the DNS answering.
  waitForGrid = ''
    start_all()
    backend.wait_for_unit("gwx-backend-ruleset.service")
    backend.wait_for_unit("web.service")
    backend.wait_for_open_port(8080)
    for gw in (gw1, gw2):
        gw.wait_for_unit("gwx.service")
        gw.wait_until_succeeds("curl -sf http://127.0.0.1:9100/healthz", timeout=60)
    ns.wait_for_unit("gwx-dns.service")
    # gwx dns answers once every gateway address has a health verdict.
    client.wait_until_succeeds(
        "dig +short +time=1 +tries=1 @203.0.113.53 web.grid.test A | grep -Eq '^203[.]0[.]113[.]1[12]$'",
        timeout=60,
    )
  '';
}
