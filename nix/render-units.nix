# The settings of the checked-in images/systemd/* files: nix/units.nix with its Debian
# defaults, the sysctl values and the kernel modules, as JSON. No nixpkgs, no store:
#
#   nix-instantiate --store dummy:// --eval --strict --json nix/render-units.nix
#
# images/builder/tests/units.rs compares this with the files (and rewrites them from it
# with UPDATE_UNITS=1).
let
  shared = import ./units.nix { };
in
{
  inherit (shared) units users modules;
  sysctl = import ./sysctl.nix;
}
