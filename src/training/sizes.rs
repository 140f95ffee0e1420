//! Sizes as a user types them (`--max-memory 8G`) and as messages print them.

use anyhow::{bail, Context, Result};

const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// Bytes in the largest binary unit that keeps the number at least 1 (`1.5 GiB`).
pub fn format_size(bytes: u128) -> String {
    let mut x = bytes as f64;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{x:.1} {}", UNITS[unit])
    }
}

/// Parses a size such as `8G`, `512MiB`, `1.5g`, `2GB` or `1000000` (bytes). `K`, `M`, `G`
/// and `T`, alone or with `iB`, are binary (1024, 1024², ...); with `B` they are decimal, as
/// in SI (`1GB` is 10⁹ bytes); a lowercase `b` would be bits, and is refused. A whole number
/// is read exactly.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    let not_size = || format!("{s:?} is not a positive size (such as 8G or 512M)");
    if number.is_empty() {
        bail!("{}", not_size());
    }
    let (power, base) = match unit {
        "" | "B" => (0, 1),
        _ => {
            let (prefix, rest) = unit.split_at(1);
            let power = match prefix.to_ascii_lowercase().as_str() {
                "k" => 1,
                "m" => 2,
                "g" => 3,
                "t" => 4,
                _ => bail!("{s:?}: unknown unit {unit:?} (use K, M, G or T)"),
            };
            match rest {
                "" | "i" | "iB" => (power, 1024u128),
                "B" => (power, 1000),
                _ if rest.ends_with('b') => bail!(
                    "{s:?}: a lowercase b would mean bits; sizes are bytes: {number}{} or {number}{0}iB (binary), {number}{0}B (decimal)",
                    prefix.to_ascii_uppercase()
                ),
                _ => bail!("{s:?}: unknown unit {unit:?} (use K, M, G or T)"),
            }
        }
    };
    let scale = base.pow(power);
    let bytes: u128 = if number.contains('.') {
        let x: f64 = number.parse().ok().with_context(not_size)?;
        let bytes = x * scale as f64;
        if bytes >= 2f64.powi(64) {
            u128::MAX
        } else {
            bytes as u128
        }
    } else {
        number
            .parse::<u128>()
            .map_or(Some(u128::MAX), |n| n.checked_mul(scale))
            .unwrap_or(u128::MAX)
    };
    if bytes == 0 {
        bail!("{}", not_size());
    }
    u64::try_from(bytes).map_err(|_| {
        anyhow::anyhow!(
            "{s:?} is more than {} bytes (16 EiB), the most a size can be",
            u64::MAX
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_exactly_and_print_in_binary_units() {
        assert_eq!(parse_size("8G").unwrap(), 8 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5 g").unwrap(), 3 << 29);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("18446744073709551615").unwrap(), u64::MAX);
        let err = parse_size("18446744073709551616").unwrap_err().to_string();
        assert!(
            err.contains("more than 18446744073709551615 bytes"),
            "{err}"
        );
        let err = parse_size("1Gb").unwrap_err().to_string();
        assert!(
            err.contains("would mean bits") && err.contains("1G or 1GiB"),
            "{err}"
        );
        for bad in [
            "",
            "-1G",
            "8X",
            "1e400",
            "nan",
            "0",
            "0.0G",
            ".G",
            "1.5.2M",
            "99999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(999), "999 B");
    }
}
