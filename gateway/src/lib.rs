//! dcmms-gateway
