//! dcmms-protocols-core
