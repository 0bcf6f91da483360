# nooelint: oelint.file.underscores,oelint.var.mandatoryvar.SRC_URI
# (A bundle has no version of its own and fetches nothing: its input is the
# image in DEPLOY_DIR_IMAGE.)
SUMMARY = "RAUC update bundle of the dCMMS Edge gateway appliance"
DESCRIPTION = "Signed verity bundle whose rootfs slot is dcmms-gateway-image."
HOMEPAGE = "https://example.invalid/dcmms-edge"
LICENSE = "MIT"

inherit bundle dcmms_rauc

# Must equal compatible= in the target's /etc/rauc/system.conf, which the
# rauc-conf bbappend of this layer writes with the same function
# (DCMMS_RAUC_COMPATIBLE, see classes/dcmms_rauc.bbclass).
RAUC_BUNDLE_COMPATIBLE = "${@dcmms_rauc_compatible(d)}"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "${SUMMARY}"
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "dcmms-gateway-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# The signing key and certificate are never part of this layer: set
# RAUC_KEY_FILE and RAUC_CERT_FILE (absolute paths) in local.conf or the
# BSP's distro configuration; do_bundle stops with an error while they are
# unset.
