use std::sync::Mutex;
pub static T: Mutex<Vec<(&'static str, f64, u64)>> = Mutex::new(Vec::new());
pub fn add(name: &'static str, s: f64) {
    let mut t = T.lock().unwrap();
    if let Some(e) = t.iter_mut().find(|e| e.0 == name) { e.1 += s; e.2 += 1; } else { t.push((name, s, 1)); }
}
pub fn dump() {
    let t = T.lock().unwrap();
    let total: f64 = t.iter().map(|e| e.1).sum();
    for e in t.iter() { eprintln!("{:28} {:9.1} ms  {:5.1}%  n={}", e.0, e.1 * 1e3, 100.0 * e.1 / total, e.2); }
    eprintln!("total {:.1} ms", total * 1e3);
}
#[macro_export]
macro_rules! tm { ($n:expr, $e:expr) => {{ let s = std::time::Instant::now(); let r = $e; $crate::prof::add($n, s.elapsed().as_secs_f64()); r }}; }
