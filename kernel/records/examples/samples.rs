//! Prints one record line of every kind, as the kernel prints them (behind printk-style
//! timestamps): the host report tool's tests parse this output.
fn main() {
    let mut buf = [0u8; records::MAX_LEN];
    for (i, rec) in records::samples().iter().enumerate() {
        let n = records::encode(rec, &mut buf).expect("a sample fits");
        let line = core::str::from_utf8(&buf[..n]).expect("JSON is UTF-8");
        println!("[{:5}.{:06}] {}{}", i / 10, i % 10 * 1000, records::PREFIX, line);
    }
}
