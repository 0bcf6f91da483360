//! Discovery: walks a server's address space from the Objects folder and
//! turns the numeric and boolean scalar variables it finds into a point map
//! a user can edit.
//!
//! The walk follows hierarchical references (Organizes, HasComponent, ...)
//! but not HasProperty, so the properties of a variable (EURange,
//! EngineeringUnits, ...) do not become points. Namespace 0 (the server's
//! own diagnostics under Objects/Server) is skipped unless asked for.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use dcmms_protocols_core::unique_point_name;
use opcua::client::Session;
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResult, BrowseResultMask, ByteString,
    DataValue, NodeClass, NodeId, ObjectId, ReadValueId, ReferenceTypeId, TimestampsToReturn,
    Variant,
};
use tracing::info;

use crate::config::{PointConfig, WriteType};

/// Nodes per Browse request and attributes per Read request.
const BATCH: usize = 100;
const READ_BATCH: usize = 900;

/// What to walk.
#[derive(Debug, Clone)]
pub struct BrowseOptions {
    /// Where to start (default: the Objects folder, i=85).
    pub root: NodeId,
    /// How many references deep to go below the root.
    pub max_depth: usize,
    /// Stop after this many nodes (a safety net for huge servers).
    pub max_nodes: usize,
    /// Also walk nodes of namespace 0 (the Server object and its
    /// diagnostics).
    pub include_ns0: bool,
}

impl Default for BrowseOptions {
    fn default() -> Self {
        BrowseOptions {
            root: ObjectId::ObjectsFolder.into(),
            max_depth: 10,
            max_nodes: 100_000,
            include_ns0: false,
        }
    }
}

/// One variable found by [`browse`].
#[derive(Debug, Clone, PartialEq)]
pub struct BrowsedVariable {
    pub node_id: NodeId,
    /// Browse names from below the root down to the variable.
    pub path: Vec<String>,
    /// The built-in type behind the variable's DataType, if numeric or
    /// boolean.
    pub data_type: Option<WriteType>,
    /// The variable is an array (or may be one).
    pub array: bool,
    /// The current user may write the variable's value.
    pub writable: bool,
}

/// Why a browse failed.
#[derive(Debug, thiserror::Error)]
#[error("browse of {node}: {message}")]
pub struct BrowseError {
    pub node: String,
    pub message: String,
}

/// What a walk found and skipped.
#[derive(Debug, Clone, Default)]
pub struct BrowseOutcome {
    /// Every variable found, numeric or not.
    pub variables: Vec<BrowsedVariable>,
    /// Nodes visited (objects and variables).
    pub nodes: usize,
    /// The walk stopped at `max_nodes`.
    pub truncated: bool,
}

impl BrowseOutcome {
    /// The variables that can be points: scalar numbers and booleans.
    pub fn usable(&self) -> impl Iterator<Item = &BrowsedVariable> {
        self.variables
            .iter()
            .filter(|v| v.data_type.is_some() && !v.array)
    }

    /// A point map of the usable variables: subscribed, not writable
    /// (writes stay off until a user marks a point), named after the browse
    /// path.
    pub fn point_map(&self) -> Vec<PointConfig> {
        let mut taken = BTreeSet::new();
        self.usable()
            .map(|v| {
                let name = unique_point_name(&v.path, &mut taken);
                PointConfig::new(name, v.node_id.to_string())
            })
            .collect()
    }
}

/// The built-in type of a standard DataType node id (and the common
/// subtypes of numbers), `None` for anything else.
pub fn write_type_of_data_type(id: &NodeId) -> Option<WriteType> {
    if id.namespace != 0 {
        return None;
    }
    Some(match id.as_u32()? {
        1 => WriteType::Boolean,
        2 => WriteType::Sbyte,
        3 => WriteType::Byte,
        4 => WriteType::Int16,
        5 => WriteType::Uint16,
        6 => WriteType::Int32,
        7 => WriteType::Uint32,
        8 => WriteType::Int64,
        9 => WriteType::Uint64,
        10 => WriteType::Float,
        11 => WriteType::Double,
        // Duration (Double), IntegerId and Counter (UInt32).
        290 => WriteType::Double,
        288 | 289 => WriteType::Uint32,
        _ => return None,
    })
}

fn describe(node: &NodeId) -> BrowseDescription {
    BrowseDescription {
        node_id: node.clone(),
        browse_direction: BrowseDirection::Forward,
        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
        include_subtypes: true,
        node_class_mask: (NodeClass::Object as u32) | (NodeClass::Variable as u32),
        result_mask: BrowseResultMask::All as u32,
    }
}

fn service_err(node: &NodeId, e: impl std::fmt::Display) -> BrowseError {
    BrowseError {
        node: node.to_string(),
        message: e.to_string(),
    }
}

/// Walks the address space below `opts.root`. `progress` is called with
/// (nodes visited, variables found) after each batch; a log line with the
/// same counts is written every 1,000 nodes.
pub async fn browse(
    session: &Arc<Session>,
    opts: &BrowseOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<BrowseOutcome, BrowseError> {
    let started = Instant::now();
    let has_property: NodeId = ReferenceTypeId::HasProperty.into();
    let mut out = BrowseOutcome::default();
    let mut seen: HashSet<NodeId> = HashSet::from([opts.root.clone()]);
    let mut queue: VecDeque<(NodeId, Vec<String>, usize)> =
        VecDeque::from([(opts.root.clone(), Vec::new(), 0)]);
    let mut found: Vec<(NodeId, Vec<String>)> = Vec::new();
    let mut logged = 0;
    while !queue.is_empty() && !out.truncated {
        let batch: Vec<(NodeId, Vec<String>, usize)> =
            queue.drain(..queue.len().min(BATCH)).collect();
        let descriptions: Vec<BrowseDescription> =
            batch.iter().map(|(n, _, _)| describe(n)).collect();
        let results = session
            .browse(&descriptions, 1000, None)
            .await
            .map_err(|e| service_err(&batch[0].0, e))?;
        for ((node, path, depth), result) in batch.iter().zip(results) {
            let refs = all_references(session, node, result).await?;
            for r in refs {
                if !r.is_forward || r.reference_type_id == has_property {
                    continue;
                }
                if r.node_id.server_index != 0 || !r.node_id.namespace_uri.is_empty() {
                    continue;
                }
                let target = r.node_id.node_id;
                if target.namespace == 0 && !opts.include_ns0 {
                    continue;
                }
                if !seen.insert(target.clone()) {
                    continue;
                }
                out.nodes += 1;
                if out.nodes >= opts.max_nodes {
                    out.truncated = true;
                }
                let mut child = path.clone();
                child.push(r.browse_name.name.as_ref().to_string());
                if r.node_class == NodeClass::Variable {
                    found.push((target.clone(), child.clone()));
                }
                if depth + 1 < opts.max_depth && !out.truncated {
                    queue.push_back((target, child, depth + 1));
                }
            }
        }
        progress(out.nodes, found.len());
        if out.nodes >= logged + 1000 {
            logged = out.nodes;
            info!(
                nodes = out.nodes,
                variables = found.len(),
                queued = queue.len(),
                "OPC UA browse in progress"
            );
        }
    }
    // DataType, ValueRank and UserAccessLevel of every variable.
    for chunk in found.chunks(READ_BATCH / 3) {
        let reads: Vec<ReadValueId> = chunk
            .iter()
            .flat_map(|(n, _)| {
                [
                    AttributeId::DataType,
                    AttributeId::ValueRank,
                    AttributeId::UserAccessLevel,
                ]
                .map(|a| ReadValueId {
                    node_id: n.clone(),
                    attribute_id: a as u32,
                    ..Default::default()
                })
            })
            .collect();
        let values = session
            .read(&reads, TimestampsToReturn::Neither, 0.0)
            .await
            .map_err(|e| service_err(&chunk[0].0, e))?;
        for (k, (node, path)) in chunk.iter().enumerate() {
            let get = |i: usize| {
                values
                    .get(3 * k + i)
                    .and_then(|dv: &DataValue| dv.value.clone())
            };
            let data_type = match get(0) {
                Some(Variant::NodeId(id)) => write_type_of_data_type(&id),
                _ => None,
            };
            let array = match get(1) {
                // -1 scalar, -2 any, -3 scalar or one dimension: taken as
                // scalars (a read of an array value gives a Bad sample).
                Some(Variant::Int32(rank)) => rank >= 0,
                _ => false,
            };
            let writable = match get(2) {
                Some(Variant::Byte(level)) => level & 0x02 != 0,
                _ => false,
            };
            out.variables.push(BrowsedVariable {
                node_id: node.clone(),
                path: path.clone(),
                data_type,
                array,
                writable,
            });
        }
    }
    info!(
        nodes = out.nodes,
        variables = out.variables.len(),
        usable = out.usable().count(),
        truncated = out.truncated,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "OPC UA browse done"
    );
    Ok(out)
}

/// The references of one browse result, following continuation points.
async fn all_references(
    session: &Arc<Session>,
    node: &NodeId,
    first: BrowseResult,
) -> Result<Vec<opcua::types::ReferenceDescription>, BrowseError> {
    if !first.status_code.is_good() {
        // A node we may not browse: skip it, as a UA client does.
        tracing::debug!(node = %node, status = %first.status_code, "browse refused for a node");
        return Ok(Vec::new());
    }
    let mut refs = first.references.unwrap_or_default();
    let mut cp: ByteString = first.continuation_point;
    while !cp.is_null() && !cp.is_empty() {
        let next = session
            .browse_next(false, std::slice::from_ref(&cp))
            .await
            .map_err(|e| service_err(node, e))?;
        let Some(r) = next.into_iter().next() else {
            break;
        };
        if !r.status_code.is_good() {
            break;
        }
        refs.extend(r.references.unwrap_or_default());
        cp = r.continuation_point;
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_types_map_to_write_types() {
        assert_eq!(
            write_type_of_data_type(&NodeId::new(0, 11u32)),
            Some(WriteType::Double)
        );
        assert_eq!(
            write_type_of_data_type(&NodeId::new(0, 1u32)),
            Some(WriteType::Boolean)
        );
        assert_eq!(
            write_type_of_data_type(&NodeId::new(0, 7u32)),
            Some(WriteType::Uint32)
        );
        assert_eq!(
            write_type_of_data_type(&NodeId::new(0, 290u32)),
            Some(WriteType::Double)
        );
        assert_eq!(
            write_type_of_data_type(&NodeId::new(0, 12u32)),
            None,
            "String"
        );
        assert_eq!(
            write_type_of_data_type(&NodeId::new(0, 20u32)),
            None,
            "StatusCode"
        );
        assert_eq!(
            write_type_of_data_type(&NodeId::new(2, 11u32)),
            None,
            "not ns 0"
        );
    }

    #[test]
    fn point_map_keeps_scalar_numbers_and_names_them_by_path() {
        let v = |path: &[&str], id: u32, t: Option<WriteType>, array: bool| BrowsedVariable {
            node_id: NodeId::new(2, id),
            path: path.iter().map(|s| s.to_string()).collect(),
            data_type: t,
            array,
            writable: false,
        };
        let out = BrowseOutcome {
            variables: vec![
                v(&["Plant", "P ac"], 1, Some(WriteType::Double), false),
                v(&["Plant", "P/ac"], 2, Some(WriteType::Float), false),
                v(&["Plant", "Name"], 3, None, false),
                v(&["Plant", "Curve"], 4, Some(WriteType::Double), true),
            ],
            nodes: 5,
            truncated: false,
        };
        let map = out.point_map();
        let names: Vec<&str> = map.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Plant.P_ac", "Plant.P_ac_2"]);
        assert_eq!(map[0].node_id, "ns=2;i=1");
        assert!(!map[0].writable);
    }
}
