# Example A/B system.conf for the gateway appliance: two ext4 root
# filesystem slots switched by U-Boot. It applies only to builds that opt in
# with the "dcmms-ab" override, e.g. in local.conf:
#   DISTROOVERRIDES:append = ":dcmms-ab"
# A BSP with another partition layout or bootloader ships its own
# system.conf instead. The keyring that verifies bundles comes from
# RAUC_KEYRING_FILE / RAUC_KEYRING_URI (see meta-rauc's rauc-conf.bb): point
# them at the CA of the bundle signing certificate.
FILESEXTRAPATHS:prepend:dcmms-ab := "${THISDIR}/files:"

# dcmms_rauc_compatible(), shared with dcmms-gateway-bundle.
inherit dcmms_rauc

do_install:append:dcmms-ab() {
    sed -i -e 's|@RAUC_COMPATIBLE@|${@dcmms_rauc_compatible(d)}|' \
        -e 's|@RAUC_KEYRING@|${@os.path.basename(d.getVar('RAUC_KEYRING_FILE'))}|' \
        ${D}${sysconfdir}/rauc/system.conf
}
