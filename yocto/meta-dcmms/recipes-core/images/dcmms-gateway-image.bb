SUMMARY = "dCMMS Edge gateway appliance image"
DESCRIPTION = "Minimal systemd image running dcmms-gateway. With meta-rauc in \
               the build it also carries rauc and is the rootfs slot of \
               dcmms-gateway-bundle."
LICENSE = "MIT"

IMAGE_INSTALL = "packagegroup-core-boot dcmms-gateway ${CORE_IMAGE_EXTRA_INSTALL}"
IMAGE_LINGUAS = ""

inherit core-image features_check

# dcmms-gateway runs as a systemd service (Type=notify): the distro needs
# "systemd" in DISTRO_FEATURES and INIT_MANAGER = "systemd".
REQUIRED_DISTRO_FEATURES = "systemd"

# The RAUC bundle carries this image as an ext4 root filesystem.
IMAGE_FSTYPES += "ext4"
