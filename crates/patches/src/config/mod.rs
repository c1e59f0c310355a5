//! `config.json` rewrites between transformers versions: what transformers
//! itself does when it reads an older config, done on the JSON so that code
//! reading the new names needs no change.

mod gpt2_attribute_map;
mod rope_type;
mod torch_dtype;

pub use gpt2_attribute_map::Gpt2AttributeMap;
pub use rope_type::RopeScalingType;
pub use torch_dtype::TorchDtype;

use crate::Patch;
use serde_json::Value;

/// What config patches name as their target.
pub const TARGET: &str = "config.json";

/// The built-in config patches, in the order they apply.
pub fn builtin() -> Vec<Box<dyn Patch<Value>>> {
    vec![
        Box::new(TorchDtype::new()),
        Box::new(RopeScalingType::new()),
        Box::new(Gpt2AttributeMap::new()),
    ]
}
