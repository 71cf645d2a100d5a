# Turns a unit of nix/units.nix into NixOS's systemd.services / systemd.timers form, so
# that the modules set exactly the [Service] / [Timer] settings the Debian files hold.
# Only the [Unit] and [Install] keys units.nix uses are mapped; anything else there is
# an error here rather than silently dropped.
{ lib }:
let
  unitKeys = [
    "Description"
    "After"
    "Before"
    "Wants"
  ];
  installKeys = [ "WantedBy" ];
  check =
    name: section: allowed: attrs:
    let
      extra = lib.subtractLists allowed (builtins.attrNames attrs);
    in
    if extra == [ ] then
      true
    else
      throw "nix/modules/systemd.nix: ${name}: [${section}] ${toString extra} not mapped";
  common =
    name: unit:
    assert check name "Unit" unitKeys unit.Unit;
    assert check name "Install" installKeys (unit.Install or { });
    {
      description = unit.Unit.Description;
      after = unit.Unit.After or [ ];
      before = unit.Unit.Before or [ ];
      wants = unit.Unit.Wants or [ ];
      wantedBy = (unit.Install or { }).WantedBy or [ ];
    };
in
{
  # systemd.services.<name> = service units."<name>.service"
  service = name: unit: common name unit // { serviceConfig = unit.Service; };
  # systemd.timers.<name> = timer units."<name>.timer"
  timer = name: unit: common name unit // { timerConfig = unit.Timer; };
}
