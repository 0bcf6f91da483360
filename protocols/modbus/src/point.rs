//! The point model shared by Modbus TCP devices and RTU units: the four
//! data tables, a point as configured ([`PointConfig`], TOML or CSV) and as
//! validated ([`ModbusPoint`]). Validation names the device, the point and
//! the field at fault; nothing here touches the network.

use std::fmt;
use std::str::FromStr;

use dcmms_protocols_core::{ByteOrder, DataType, ParseEnumError, Scaling, WordOrder};
use dcmms_shared::validate_name;
use serde::{Deserialize, Serialize};

use crate::config::ModbusConfigError;

/// One value read from a device.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PointConfig {
    /// Point name, unique within the device, 1-64 characters from
    /// `[A-Za-z0-9_.-]`.
    pub name: String,
    /// `holding` (function 3), `input` (function 4), `coil` (function 1) or
    /// `discrete` (function 2).
    pub table: Table,
    /// 0-based protocol address of the first register or bit (register
    /// "40001" in 1-based vendor notation is holding address 0).
    pub address: u16,
    /// `bool`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `f32` or `f64`.
    /// Default `u16` for registers and `bool` for coils and discrete inputs,
    /// which can only be `bool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<DataType>,
    /// Order of the registers of a 32/64-bit value: `big_endian` (high word
    /// first, default) or `little_endian`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub word_order: WordOrder,
    /// Order of the bytes inside each register: `big_endian` (default) or
    /// `little_endian` (swapped).
    #[serde(default, skip_serializing_if = "is_default")]
    pub byte_order: ByteOrder,
    /// Multiplier from raw value to engineering units, e.g. 0.1 for a value
    /// in tenths. Default 1.
    #[serde(default = "default_scale", skip_serializing_if = "is_one")]
    pub scale: f64,
    /// Added after scaling: `value = raw * scale + offset`. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: f64,
    /// Accept writes (setpoints, commands) to this point. Only holding
    /// registers (function 6, or 16 for values of more than one register)
    /// and coils (function 5) can be written. Default false: a device is
    /// read-only unless a point says otherwise.
    #[serde(default, skip_serializing_if = "is_false")]
    pub writable: bool,
}

fn default_scale() -> f64 {
    1.0
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn is_one(v: &f64) -> bool {
    *v == 1.0
}
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
fn is_false(v: &bool) -> bool {
    !*v
}

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Table {
    /// Holding registers, read with function 3.
    Holding,
    /// Input registers, read with function 4.
    Input,
    /// Coils, read with function 1.
    Coil,
    /// Discrete inputs, read with function 2.
    Discrete,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Holding, Table::Input, Table::Coil, Table::Discrete];

    pub fn as_str(self) -> &'static str {
        match self {
            Table::Holding => "holding",
            Table::Input => "input",
            Table::Coil => "coil",
            Table::Discrete => "discrete",
        }
    }

    /// Coils and discrete inputs hold bits; the others 16-bit registers.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }

    /// Holding registers and coils can be written; the others are read-only.
    pub fn is_writable(self) -> bool {
        matches!(self, Table::Holding | Table::Coil)
    }

    /// Most registers (or bits) one read request may ask for.
    pub fn max_read(self) -> u16 {
        if self.is_bits() {
            2000
        } else {
            125
        }
    }
}

impl FromStr for Table {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "holding" | "holding_register" | "holding_registers" | "hr" => Ok(Table::Holding),
            "input" | "input_register" | "input_registers" | "ir" => Ok(Table::Input),
            "coil" | "coils" => Ok(Table::Coil),
            "discrete" | "discrete_input" | "discrete_inputs" | "di" => Ok(Table::Discrete),
            _ => Err(ParseEnumError {
                what: "table",
                given: s.to_owned(),
                expected: "holding, input, coil, discrete",
            }),
        }
    }
}

impl TryFrom<String> for Table {
    type Error = ParseEnumError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Table> for &'static str {
    fn from(t: Table) -> &'static str {
        t.as_str()
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated point, ready to be planned and decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusPoint {
    pub name: String,
    pub table: Table,
    pub address: u16,
    pub data_type: DataType,
    pub word_order: WordOrder,
    pub byte_order: ByteOrder,
    pub scaling: Scaling,
    /// Writes are accepted for this point.
    pub writable: bool,
}

impl ModbusPoint {
    /// Registers (or bits) the point occupies.
    pub fn width(&self) -> u16 {
        if self.table.is_bits() {
            1
        } else {
            self.data_type.register_count() as u16
        }
    }
}
impl PointConfig {
    /// A `u16` point with default orders and scaling.
    pub fn new(name: impl Into<String>, table: Table, address: u16) -> Self {
        PointConfig {
            name: name.into(),
            table,
            address,
            data_type: None,
            word_order: WordOrder::default(),
            byte_order: ByteOrder::default(),
            scale: 1.0,
            offset: 0.0,
            writable: false,
        }
    }

    pub fn with_type(mut self, data_type: DataType) -> Self {
        self.data_type = Some(data_type);
        self
    }

    pub fn with_scale(mut self, scale: f64, offset: f64) -> Self {
        self.scale = scale;
        self.offset = offset;
        self
    }

    /// Marks the point writable.
    pub fn writable(mut self) -> Self {
        self.writable = true;
        self
    }

    pub fn validate(&self, device: &str) -> Result<ModbusPoint, ModbusConfigError> {
        let field_err = |field: &'static str, message: String| ModbusConfigError::PointField {
            device: device.to_owned(),
            point: self.name.clone(),
            field,
            message,
        };
        validate_name(&self.name).map_err(|source| ModbusConfigError::PointName {
            device: device.to_owned(),
            point: self.name.clone(),
            source,
        })?;
        let data_type = match (self.table.is_bits(), self.data_type) {
            (true, None | Some(DataType::Bool)) => DataType::Bool,
            (true, Some(t)) => {
                return Err(field_err(
                    "data_type",
                    format!("{t} on a {} table; coils and discrete inputs are bool", self.table),
                ))
            }
            (false, None) => DataType::U16,
            (false, Some(DataType::Bool)) => {
                return Err(field_err(
                    "data_type",
                    format!("bool on the {} register table; use a coil or discrete input, or an integer type", self.table),
                ))
            }
            (false, Some(t)) => t,
        };
        let width = if self.table.is_bits() {
            1
        } else {
            data_type.register_count() as u32
        };
        let last = u32::from(self.address) + width - 1;
        if last > u32::from(u16::MAX) {
            return Err(field_err(
                "address",
                format!(
                    "{} {data_type} at {} would end at {last}, past the last address 65535",
                    self.table, self.address
                ),
            ));
        }
        if !self.scale.is_finite() || self.scale == 0.0 {
            return Err(field_err(
                "scale",
                format!("{} must be a finite, non-zero number", self.scale),
            ));
        }
        if !self.offset.is_finite() {
            return Err(field_err(
                "offset",
                format!("{} must be a finite number", self.offset),
            ));
        }
        if self.writable && !self.table.is_writable() {
            return Err(field_err(
                "writable",
                format!(
                    "the {} table is read-only; only holding registers and coils can be written",
                    self.table
                ),
            ));
        }
        Ok(ModbusPoint {
            name: self.name.clone(),
            table: self.table,
            address: self.address,
            data_type,
            word_order: self.word_order,
            byte_order: self.byte_order,
            scaling: Scaling::new(self.scale, self.offset),
            writable: self.writable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        for t in Table::ALL {
            assert_eq!(t.as_str().parse::<Table>(), Ok(t));
        }
        assert_eq!(Table::Holding.max_read(), 125);
        assert_eq!(Table::Coil.max_read(), 2000);
        assert_eq!("Holding_Registers".parse::<Table>(), Ok(Table::Holding));
        let writable: Vec<Table> = Table::ALL.into_iter().filter(|t| t.is_writable()).collect();
        assert_eq!(writable, vec![Table::Holding, Table::Coil]);
    }

    #[test]
    fn only_holding_registers_and_coils_are_writable() {
        for t in Table::ALL {
            let p = PointConfig::new("sp", t, 3).writable().validate("inv-01");
            if t.is_writable() {
                assert!(p.unwrap().writable, "{t}");
            } else {
                let e = p.unwrap_err().to_string();
                assert_eq!(
                    e,
                    format!(
                        "modbus device \"inv-01\", point \"sp\": field `writable`: the {t} \
                         table is read-only; only holding registers and coils can be written"
                    )
                );
            }
        }
        assert!(
            !PointConfig::new("x", Table::Holding, 0)
                .validate("d")
                .unwrap()
                .writable
        );
    }

    #[test]
    fn writable_in_toml() {
        let p: PointConfig =
            toml::from_str("name='sp'\ntable='holding'\naddress=3\nwritable=true").unwrap();
        assert!(p.writable);
        assert!(toml::to_string(&p).unwrap().contains("writable = true"));
        let p: PointConfig = toml::from_str("name='sp'\ntable='holding'\naddress=3").unwrap();
        assert!(!p.writable);
        assert!(!toml::to_string(&p).unwrap().contains("writable"));
    }
}
