# Helpers shared by dcmms-gateway-bundle and the rauc-conf bbappend of
# meta-dcmms, which must agree with each other.

# RAUC compatible string: written into the bundle manifest and into the
# target's /etc/rauc/system.conf; RAUC installs a bundle only where the two
# are equal. Set DCMMS_RAUC_COMPATIBLE per product in local.conf or the
# distro, e.g.
#   DCMMS_RAUC_COMPATIBLE = "acme-gateway-imx8"
# Without it the string is "dcmms-gateway-${MACHINE}".
def dcmms_rauc_compatible(d):
    return d.getVar('DCMMS_RAUC_COMPATIBLE') or 'dcmms-gateway-%s' % d.getVar('MACHINE')
