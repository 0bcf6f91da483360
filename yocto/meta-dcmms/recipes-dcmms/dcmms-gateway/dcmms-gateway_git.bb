SUMMARY = "dCMMS Edge site gateway"
DESCRIPTION = "Polls field devices (Modbus TCP), keeps every sample in a local \
               ring buffer and forwards it to the dCMMS hub over MQTT with \
               mutual TLS."
HOMEPAGE = "https://example.invalid/dcmms-edge"
SECTION = "net"

# The workspace declares its licence in the root Cargo.toml
# ([workspace.package] license = "Apache-2.0", line 21). Point this at a
# LICENSE file once the repository has one. The crates linked into the
# binary carry their own (mostly MIT/Apache-2.0) licences.
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=21;endline=21;md5=2507bd5f0713f05419cd2f22fa06fe62"

# Keep in step with [workspace.package] version in Cargo.toml.
PV = "0.1.0+git"

# The repository; a BSP points these at its own server, e.g. in local.conf:
#   DCMMS_GIT_REPO = "git@git.example.com/dcmms-edge.git"
#   DCMMS_GIT_PROTOCOL = "ssh"
DCMMS_GIT_REPO ?= "example.invalid/dcmms-edge.git"
DCMMS_GIT_PROTOCOL ?= "https"
SRC_URI = "git://${DCMMS_GIT_REPO};protocol=${DCMMS_GIT_PROTOCOL};branch=main;destsuffix=git \
           file://gateway.toml \
           "
# Every crates.io package of Cargo.lock, written by scripts/gen-crates-inc.py.
require ${BPN}-crates.inc
# SRCREV, the commit fetched above; the file says how to pin another one.
require ${BPN}-srcrev.inc

# SRC_URI is unpacked into UNPACKDIR from styhead on and into WORKDIR before
# (scarthgap has no UNPACKDIR).
DCMMS_UNPACKDIR = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}"
S = "${DCMMS_UNPACKDIR}/git"

inherit cargo features_check systemd useradd

# The unit is Type=notify; the appliance runs systemd.
REQUIRED_DISTRO_FEATURES = "systemd"

# cargo.bbclass runs
#   cargo build -v --frozen --target ${RUST_HOST_SYS} ${BUILD_MODE} \
#       --manifest-path=${CARGO_MANIFEST_PATH}
# on the workspace root manifest (CARGO_SRC_DIR is empty) and takes the
# result from target/${RUST_HOST_SYS}/${BUILD_DIR}. Building the workspace's
# firmware profile (LTO, one codegen unit, opt-level "s", panic=abort) means
# setting both. Depending on the release the class derives them from
# DEBUG_BUILD or sets them as weak defaults; an assignment after the inherit
# wins in either case, so DEBUG_BUILD does not switch this recipe to a debug
# build.
BUILD_MODE = "--profile firmware"
BUILD_DIR = "firmware"
# Only the gateway package. Cargo still resolves the whole workspace, which
# is why the crate list covers all of Cargo.lock.
CARGO_BUILD_FLAGS:append = " --package dcmms-gateway"
# The profile strips the binary; leave that to the packaging step so that
# the -dbg package gets the symbols and QA sees no pre-stripped binary.
export CARGO_PROFILE_FIRMWARE_STRIP = "false"

# Replaces cargo_do_install, which would also copy the library's .rlib.
do_install() {
    install -d ${D}${bindir}
    install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/dcmms-gateway ${D}${bindir}/dcmms-gateway

    # The unit is maintained with the source: systemd/dcmms-gateway.service.
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/dcmms-gateway.service ${D}${systemd_system_unitdir}/dcmms-gateway.service
    # The unit's Documentation= (packaged in ${PN}-doc).
    install -d ${D}${docdir}/${BPN}
    install -m 0644 ${S}/README.md ${D}${docdir}/${BPN}/README.md

    install -d -m 0750 ${D}${sysconfdir}/dcmms
    install -m 0640 ${DCMMS_UNPACKDIR}/gateway.toml ${D}${sysconfdir}/dcmms/gateway.toml
    # Filled at enrolment: ca.pem, cert.pem and key.pem from `dcmms-hub enroll`.
    install -d -m 0750 ${D}${sysconfdir}/dcmms/certs
    chown -R root:dcmms ${D}${sysconfdir}/dcmms
}

# The same user as systemd/dcmms.sysusers.conf in the source tree, created
# when the image is built; that file is not installed, as it also declares
# the hub's user.
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system dcmms"
# dialout: serial adapters; the unit also sets SupplementaryGroups=dialout.
USERADD_PARAM:${PN} = "--system --gid dcmms --groups dialout \
                       --home-dir ${localstatedir}/lib/dcmms-gateway --no-create-home \
                       --shell ${base_sbindir}/nologin dcmms"

SYSTEMD_SERVICE:${PN} = "dcmms-gateway.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

CONFFILES:${PN} = "${sysconfdir}/dcmms/gateway.toml"
