# With meta-rauc: the update client and its system.conf (rauc-conf).
IMAGE_INSTALL:append = " rauc"
