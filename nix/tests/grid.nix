# Scenario (a): two gwx gateways, a hidden backend, the grid's DNS and a client. The
# client reaches the backend through both gateways by the name the DNS hands out, the
# backend refuses the client directly, and a brute-forcer gets banned on the gateway
# it hits (and only there).
{ self }:
{ lib, ... }:
let
  common = import ./grid-common.nix { inherit self lib; };

  # sshd's "Invalid user" lines, in fail2ban's filter format. A filter of our own keeps
  # the test independent of the sshd.conf shipped with fail2ban (its prefix has to
  # follow OpenSSH's process names, which change).
  filter = ''
    [Definition]
    failregex = Invalid user \S* from <HOST>
    journalmatch = _SYSTEMD_UNIT=sshd.service
  '';

  withBans = {
    services.openssh.enable = true;
    environment.etc."gwx/filter.d/sshd-invalid.conf".text = filter;
    services.gwx.bans = {
      enable = true;
      settings.jail = [
        {
          name = "sshd";
          filter = "/etc/gwx/filter.d/sshd-invalid.conf";
          log.journal = [ "_SYSTEMD_UNIT=sshd.service" ];
          maxretry = 3;
          findtime = "10m";
          bantime = "10m";
        }
      ];
    };
  };
in
{
  name = "perimeter-grid";
  inherit (common) defaults;

  nodes = common.nodes // {
    gw1 = {
      imports = [
        (common.gateway "gw1" "203.0.113.11" "192.0.2.11")
        withBans
      ];
    };
    gw2 = {
      imports = [
        (common.gateway "gw2" "203.0.113.12" "192.0.2.12")
        withBans
      ];
    };
  };

  testScript = common.waitForGrid + ''
    import re

    def metric(machine, name):
        text = machine.succeed("curl -sf http://127.0.0.1:9100/metrics")
        return sum(float(v) for v in re.findall(r"^" + name + r"(?:\{[^}]*\})? (\S+)$", text, re.M))

    with subtest("the client reaches the backend through both gateways by name"):
        seen = set()
        for _ in range(30):
            seen.add(client.succeed("dig +short @203.0.113.53 web.grid.test A").strip())
            body = client.succeed("curl -sf --max-time 5 http://web.grid.test:8080/")
            assert "hello through the gateways" in body, body
        assert seen == {"203.0.113.11", "203.0.113.12"}, f"DNS answers: {seen}"
        for gw in (gw1, gw2):
            assert metric(gw, "gwx_connections_total") > 0, f"{gw.name} forwarded nothing"

    with subtest("the backend refuses the client directly, and serves the gateways"):
        client.fail("curl -sf --max-time 5 http://192.0.2.2:8080/")
        gw1.succeed("curl -sf --max-time 5 --interface 192.0.2.11 http://192.0.2.2:8080/")

    with subtest("a brute-forcer is banned on the gateway it hits"):
        gw1.wait_for_unit("gwx-bans.service")
        gw1.wait_for_open_port(22)
        for _ in range(5):
            client.execute(
                "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
                " -o ConnectTimeout=5 nosuchuser@203.0.113.11 true"
            )
        gw1.wait_until_succeeds("gwx bans list | grep -q '^203[.]0[.]113[.]100'", timeout=60)
        client.fail("curl -sf --max-time 5 http://203.0.113.11:8080/")
        # Banned on gw1 only: the other gateway still serves it.
        client.succeed("curl -sf --max-time 5 http://203.0.113.12:8080/")
        gw2.fail("gwx bans list | grep -q '203[.]0[.]113[.]100'")
  '';
}
