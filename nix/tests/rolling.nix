# Scenario (c): a rolling upgrade while a client keeps connecting. gw1 is drained from
# the DNS answers, switched to its next system (NixOS's image swap: a specialisation
# standing for the new generation), passes its health check and is undrained; the
# client, resolving the name for every connection, sees no failed connection. Then an
# upgrade whose gwx fails its health check is rolled back to the previous system.
{ self }:
{ lib, ... }:
let
  common = import ./grid-common.nix { inherit self lib; };

  # One connection every 0.2 s through whichever gateway the DNS names, until
  # /tmp/probe.stop exists: "ok <gateway address>" or "FAIL <address>" per line.
  probe =
    pkgs:
    pkgs.writeShellScriptBin "probe" ''
      while [ ! -e /tmp/probe.stop ]; do
        if addr=$(${pkgs.curl}/bin/curl -sf --max-time 3 -o /dev/null -w '%{remote_ip}' http://web.grid.test:8080/); then
          echo "ok $addr"
        else
          echo "FAIL $addr"
        fi
        sleep 0.2
      done
    '';
in
{
  name = "perimeter-rolling-upgrade";
  inherit (common) defaults;

  nodes = common.nodes // {
    client =
      { pkgs, ... }:
      {
        imports = [ common.nodes.client ];
        environment.systemPackages = [ (probe pkgs) ];
      };
    gw1 = {
      imports = [ (common.gateway "gw1" "203.0.113.11" "192.0.2.11") ];
      # The next system: gwx with a changed command line, so the switch restarts it as
      # an image swap would.
      specialisation.next.configuration = {
        services.gwx.extraArgs = [ "--counter-interval=10" ];
      };
      # An upgrade whose gwx never becomes healthy (it refuses its command line).
      specialisation.broken.configuration = {
        services.gwx.extraArgs = [ "--no-such-option" ];
      };
    };
    gw2 = common.gateway "gw2" "203.0.113.12" "192.0.2.12";
  };

  testScript =
    { nodes, ... }:
    let
      base = "${nodes.gw1.system.build.toplevel}";
    in
    common.waitForGrid
    + ''
      import time

      def answers(n=20):
          out = client.succeed(
              f"for i in $(seq {n}); do dig +short +time=1 +tries=1 @203.0.113.53 web.grid.test A; done"
          )
          return set(out.split())

      def drain(gw):
          ns.succeed(f"gwx dns drain {gw}")
          # Applied within a second; then the TTL (1 s) and the connections in flight
          # (curl --max-time 3) must pass before the gateway goes down.
          client.wait_until_succeeds(
              "! (for i in $(seq 20); do dig +short @203.0.113.53 web.grid.test A; done | grep -q 203.0.113.11)",
              timeout=30,
          )
          time.sleep(5)

      def undrain(gw):
          ns.succeed(f"gwx dns undrain {gw}")
          client.wait_until_succeeds(
              "for i in $(seq 20); do dig +short @203.0.113.53 web.grid.test A; done | grep -q 203.0.113.11",
              timeout=60,
          )

      def healthy(machine, seconds):
          for _ in range(seconds):
              if machine.execute("curl -sf --max-time 2 http://127.0.0.1:9100/healthz")[0] == 0:
                  return True
              time.sleep(1)
          return False

      client.succeed("probe > /tmp/probe.log 2>&1 &")
      time.sleep(5)

      with subtest("drain, swap, health check, undrain"):
          drain("gw1")
          gw1.succeed("${base}/specialisation/next/bin/switch-to-configuration test")
          gw1.wait_for_unit("gwx.service")
          assert healthy(gw1, 60), "gw1 not healthy after the upgrade"
          undrain("gw1")
          assert "203.0.113.11" in answers(), "gw1 not back in the answers"

      with subtest("an upgrade failing its health check rolls back"):
          drain("gw1")
          gw1.execute("${base}/specialisation/broken/bin/switch-to-configuration test")
          assert not healthy(gw1, 15), "the broken upgrade passed its health check"
          # Roll back: the previous system, gwx started afresh.
          gw1.succeed("systemctl reset-failed gwx.service")
          gw1.succeed("${base}/specialisation/next/bin/switch-to-configuration test")
          gw1.wait_for_unit("gwx.service")
          assert healthy(gw1, 60), "gw1 not healthy after the rollback"
          undrain("gw1")

      with subtest("the client never failed to connect"):
          client.succeed("touch /tmp/probe.stop")
          time.sleep(5)
          log = client.succeed("cat /tmp/probe.log").splitlines()
          failed = [l for l in log if not l.startswith("ok ")]
          used = {l.split()[1] for l in log if l.startswith("ok ")}
          assert len(log) > 100, f"only {len(log)} connections"
          assert not failed, f"{len(failed)} of {len(log)} connections failed: {failed[:5]}"
          assert used == {"203.0.113.11", "203.0.113.12"}, f"gateways used: {used}"
    '';
}
