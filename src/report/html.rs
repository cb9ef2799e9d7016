//! x
pub const REPORT_NAME: &str = "report.html";
pub struct ReportOptions;
pub fn write_report() {}
pub fn list_in_manifest() {}
