//! dcmms-modbus
