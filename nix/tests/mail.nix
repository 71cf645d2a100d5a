# Scenario (b): the avsx perimeter accepts a mail for a valid recipient (scanned by
# spamd and clamd, relayed to the internal server, 250 only after the internal 250) and
# rejects an unknown recipient at RCPT with 550 5.1.1.
#
# The peers are real but offline: spamd with a small rule file of its own (no
# sa-update), clamd with the EICAR signature only (no freshclam), and Postfix's
# smtp-sink as the internal server.
{ self }:
{ lib, ... }:
let
  imageConfig = builtins.fromTOML (builtins.readFile ../../images/files/avsx/avsx.toml);
in
{
  name = "perimeter-mail";
  defaults.imports = [ self.nixosModules.default ];

  nodes = {
    mx =
      { pkgs, ... }:
      let
        spamRules = pkgs.writeTextDir "rules/50_test.cf" ''
          required_score 5.0
          body LOCAL_GTUBE /XJS\*C4JDBQADN1\.NSBN3\*2IDNEN\*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL\*C\.34X/
          score LOCAL_GTUBE 1000
        '';
        spamSite = pkgs.writeTextDir "site/local.cf" ''
          use_bayes 0
          skip_rbl_checks 1
        '';
        # The md5 and length of the 68-byte EICAR test file.
        clamDb = pkgs.writeTextDir "db/eicar.hdb" ''
          44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature
        '';
        clamdConf = pkgs.writeText "clamd.conf" ''
          Foreground yes
          TCPSocket 3310
          TCPAddr 127.0.0.1
          DatabaseDirectory ${clamDb}/db
          TemporaryDirectory /tmp
        '';
      in
      {
        # The image's config, with the peers on this host.
        services.avsx = {
          enable = true;
          openFirewall = true;
          settings = lib.recursiveUpdate imageConfig {
            scan.spamd.address = "127.0.0.1:783";
            scan.clamd.address = "127.0.0.1:3310";
            relay.address = "127.0.0.1:2525";
            runtime.metrics_listen = "127.0.0.1:9125";
          };
        };
        environment.etc."avsx/relay_recipients".source = ../../images/files/avsx/relay_recipients;

        systemd.services.spamd = {
          wantedBy = [ "multi-user.target" ];
          before = [ "avsx.service" ];
          serviceConfig.ExecStart = lib.concatStringsSep " " [
            "${pkgs.spamassassin}/bin/spamd"
            "--listen=127.0.0.1:783"
            "--allowed-ips=127.0.0.1"
            "--configpath=${spamRules}/rules"
            "--siteconfigpath=${spamSite}/site"
            "--nouser-config"
            "--username=nobody"
            "--max-children=2"
            "--pidfile=/run/spamd.pid"
          ];
        };
        systemd.services.clamd = {
          wantedBy = [ "multi-user.target" ];
          before = [ "avsx.service" ];
          serviceConfig = {
            ExecStart = "${pkgs.clamav}/bin/clamd --config-file=${clamdConf}";
            DynamicUser = true;
          };
        };
        systemd.services.smtp-sink = {
          wantedBy = [ "multi-user.target" ];
          before = [ "avsx.service" ];
          serviceConfig.ExecStart = "${pkgs.postfix}/bin/smtp-sink -u nobody 127.0.0.1:2525 16";
        };
        environment.systemPackages = [ pkgs.curl ];
      };

    client =
      { pkgs, ... }:
      {
        environment.systemPackages = [ pkgs.swaks ];
      };
  };

  testScript = ''
    start_all()
    for port in (783, 3310, 2525):
        mx.wait_for_open_port(port)
    mx.wait_for_unit("avsx.service")
    mx.wait_for_open_port(25)
    client.wait_until_succeeds("swaks --server mx --quit-after EHLO", timeout=60)

    def swaks(to):
        return (
            f"swaks --server mx --from carol@example.net --to {to}"
            " --header 'Subject: perimeter test' --body 'Hello from the VM test.' 2>&1"
        )

    with subtest("a mail for a valid recipient is scanned, relayed and accepted"):
        # swaks exits non-zero unless the end of DATA got a 2xx.
        client.succeed(swaks("alice@example.org"))
        mx.wait_until_succeeds(
            "curl -sf http://127.0.0.1:9125/metrics | grep -Eq '^avsx_messages_total[{]action=\"clean\"[}] 1'"
        )

    with subtest("an unknown recipient is rejected at RCPT"):
        out = client.fail(swaks("nobody@example.org"))
        assert "550 5.1.1" in out, out
  '';
}
