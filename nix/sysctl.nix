# The gateway's kernel settings: the [sysctl] table of images/appliances/gwx.toml, which
# holds what `gwx sysctl` prints for the appliance's grid (images/files/gwx/grid.toml).
# One place for the VM/OCI image (imgbuild), the NixOS module (boot.kernel.sysctl) and
# the Debian file images/systemd/sysctl.d/60-gwx.conf (checked by
# images/builder/tests/units.rs).
(builtins.fromTOML (builtins.readFile ../images/appliances/gwx.toml)).sysctl
