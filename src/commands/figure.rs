//! What every picture of the command line shares: the embedded font its text is drawn in,
//! and PNG encoding of a drawn RGB buffer.

use anyhow::{bail, Result};
use plotters::style::FontStyle;
use std::sync::OnceLock;

/// The family plotters draws text in: DejaVu Sans, embedded, so no system font is needed.
pub const FONT: &str = "sans-serif";

/// Registers the embedded font as [`FONT`] (once per process).
pub fn register_font() -> Result<()> {
    static LOADED: OnceLock<bool> = OnceLock::new();
    let loaded = LOADED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if !loaded {
        bail!("the embedded DejaVu font failed to load");
    }
    Ok(())
}

/// An 8-bit RGB buffer of `w × h` pixels as PNG bytes.
pub fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(rgb)?;
    Ok(out)
}
