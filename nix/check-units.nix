# What the NixOS modules make of nix/units.nix, evaluated without nixpkgs: every unit
# goes through nix/modules/systemd.nix (which throws on a [Unit] or [Install] key it
# does not map), with a stand-in for the one nixpkgs function it uses. True when every
# unit's serviceConfig / timerConfig is its [Service] / [Timer] section unchanged.
#
#   nix-instantiate --store dummy:// --eval --strict --json nix/check-units.nix
let
  lib.subtractLists = remove: builtins.filter (x: !(builtins.elem x remove));
  systemd = import ./modules/systemd.nix { inherit lib; };
  inherit (import ./units.nix { }) units;
  suffix = s: name: builtins.match "(.*)\\.${s}" name;
  convert =
    name: unit:
    let
      service = suffix "service" name;
      timer = suffix "timer" name;
    in
    if service != null then
      (systemd.service (builtins.head service) unit).serviceConfig == unit.Service
    else if timer != null then
      (systemd.timer (builtins.head timer) unit).timerConfig == unit.Timer
    else
      throw "nix/check-units.nix: ${name}: neither a service nor a timer";
in
builtins.mapAttrs convert units
