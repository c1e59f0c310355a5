//! Moving a graph's large initializers into an external data file, the
//! ONNX way (`data_location` EXTERNAL with `location`, `offset`, `length`),
//! at offsets aligned for memory mapping. ONNX Runtime maps such a file
//! instead of parsing the weights out of the protobuf and copying them:
//! loading a graph then costs about its weights in memory, not twice
//! that, and the protobuf's 2 GiB limit no longer bounds the model.

use super::proto::{ModelProto, StringStringEntryProto};
use std::io::Write;

/// Initializers of at least this many bytes go to the data file (small
/// ones, shapes and scalars, stay inline).
pub const EXTERNAL_THRESHOLD: usize = 1024;

/// Offsets in the data file are multiples of this: the page size on Linux
/// and macOS, which ONNX Runtime needs to map a tensor in place.
pub const EXTERNAL_ALIGNMENT: u64 = 4096;

/// `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;

/// Moves the bytes of `model`'s large initializers into `out` (each at an
/// aligned offset, zero-padded before it), pointing each tensor at
/// `location` in their place; returns how many bytes `out` received (0:
/// nothing was large enough, the graph stays whole).
pub fn externalize(
    model: &mut ModelProto,
    out: &mut impl Write,
    location: &str,
) -> std::io::Result<u64> {
    let Some(graph) = model.graph.as_mut() else {
        return Ok(0);
    };
    let mut offset = 0u64;
    for tensor in graph
        .initializer
        .iter_mut()
        .filter(|t| t.raw_data.len() >= EXTERNAL_THRESHOLD)
    {
        let pad = (EXTERNAL_ALIGNMENT - offset % EXTERNAL_ALIGNMENT) % EXTERNAL_ALIGNMENT;
        out.write_all(&vec![0u8; pad as usize])?;
        offset += pad;
        // Taken, not copied: the graph lets go of each tensor's bytes as
        // they are written.
        let data = std::mem::take(&mut tensor.raw_data);
        out.write_all(&data)?;
        let entry = |key: &str, value: String| StringStringEntryProto {
            key: key.to_owned(),
            value,
        };
        tensor.external_data = vec![
            entry("location", location.to_owned()),
            entry("offset", offset.to_string()),
            entry("length", data.len().to_string()),
        ];
        tensor.data_location = EXTERNAL;
        offset += data.len() as u64;
    }
    Ok(offset)
}

/// Points every external tensor of `model` at `location` (a data file's
/// name, relative to the graph's folder).
pub fn set_location(model: &mut ModelProto, location: &str) {
    let tensors = model
        .graph
        .iter_mut()
        .flat_map(|g| g.initializer.iter_mut());
    for entry in tensors.flat_map(|t| t.external_data.iter_mut()) {
        if entry.key == "location" {
            location.clone_into(&mut entry.value);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::builder::GraphBuilder;

    #[test]
    fn large_initializers_move_out_at_aligned_offsets() {
        let mut g = GraphBuilder::new();
        g.weight("big", &[300], &[1.5; 300]);
        g.weight("small", &[2], &[2.0; 2]);
        g.weight("second", &[1000], &[0.25; 1000]);
        let mut model = g.finish("m", "");
        let mut data = Vec::new();
        let written = externalize(&mut model, &mut data, "x").unwrap();
        assert_eq!(written, data.len() as u64);
        let init = &model.graph.as_ref().unwrap().initializer;
        let field = |i: usize, key: &str| {
            init[i]
                .external_data
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.clone())
        };
        assert_eq!(field(0, "offset").as_deref(), Some("0"));
        assert_eq!(field(0, "length").as_deref(), Some("1200"));
        // The small one stays inline.
        assert!(init[1].external_data.is_empty() && init[1].raw_data.len() == 8);
        let offset: usize = field(2, "offset").unwrap().parse().unwrap();
        assert_eq!(offset, 4096);
        let value = f32::from_le_bytes(data[offset..offset + 4].try_into().unwrap());
        assert_eq!(value, 0.25);
        set_location(&mut model, "blob");
        let init = &model.graph.as_ref().unwrap().initializer;
        assert_eq!(init[2].external_data[0].value, "blob");
    }
}
