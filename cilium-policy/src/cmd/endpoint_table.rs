//! The seed's `cilium endpoint list` table (endpoint, ingress/egress enforcement, identity,
//! labels one per line, IPv6, IPv4, status), shared by `endpoints` (offline, from manifests)
//! and `endpoint list` (from the agent).

/// One endpoint as the table shows it.
pub struct Row {
    pub endpoint: String,
    pub ingress_enforced: bool,
    pub egress_enforced: bool,
    pub identity: u32,
    /// `source:key=value`, the first on the endpoint's line, the others below it.
    pub labels: Vec<String>,
    pub ipv6: String,
    pub ipv4: String,
    pub status: String,
    /// Shown under the endpoint on the next line (a CNI endpoint's `container:ID`).
    pub detail: Option<String>,
}

/// The table, columns as wide as their widest cell.
pub fn render(rows: &[Row]) -> String {
    let w = rows
        .iter()
        .map(|r| {
            r.endpoint
                .len()
                .max(r.detail.as_ref().map_or(0, String::len))
        })
        .max()
        .unwrap_or(8)
        .max(8);
    let lw = rows
        .iter()
        .flat_map(|r| r.labels.iter().map(String::len))
        .max()
        .unwrap_or(27)
        .max(27);
    let word = |b: bool| if b { "Enabled" } else { "Disabled" };
    let mut out = format!(
        "{:<w$}  {:<19}  {:<18}  {:<8}  {:<lw$}  {:<24}  {:<15}  STATUS\n",
        "ENDPOINT",
        "POLICY (ingress)",
        "POLICY (egress)",
        "IDENTITY",
        "LABELS (source:key[=value])",
        "IPv6",
        "IPv4"
    );
    out += &format!("{:<w$}  {:<19}  {:<18}\n", "", "ENFORCEMENT", "ENFORCEMENT");
    for r in rows {
        out += &format!(
            "{:<w$}  {:<19}  {:<18}  {:<8}  {:<lw$}  {:<24}  {:<15}  {}\n",
            r.endpoint,
            word(r.ingress_enforced),
            word(r.egress_enforced),
            r.identity,
            r.labels.first().map(String::as_str).unwrap_or(""),
            r.ipv6,
            r.ipv4,
            r.status
        );
        let more = r.labels.len().max(1 + usize::from(r.detail.is_some()));
        for i in 1..more {
            let under = if i == 1 { r.detail.as_deref() } else { None };
            let l = r.labels.get(i).map(String::as_str).unwrap_or("");
            let line = format!(
                "{:<w$}  {:<19}  {:<18}  {:<8}  {l}",
                under.unwrap_or(""),
                "",
                "",
                ""
            );
            out += line.trim_end();
            out += "\n";
        }
    }
    out
}
