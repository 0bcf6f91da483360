//! dcmms-hub
