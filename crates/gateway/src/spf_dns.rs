//! SPF's DNS queries (`portcullis_spf::Lookup`) through the gateway's hickory resolver, whose own
//! cache keeps answers for their TTL and NXDOMAIN/NODATA for the SOA's negative TTL (RFC 2308).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::hickory_resolver::proto::rr::{Name, RData, RecordType};
use portcullis_spf::{Lookup, LookupError};

pub struct SpfDns<'a> {
    resolver: &'a TokioResolver,
}

impl<'a> SpfDns<'a> {
    pub fn new(resolver: &'a TokioResolver) -> SpfDns<'a> {
        SpfDns { resolver }
    }

    /// The records of `rtype` at `name` (CNAMEs followed by the resolver); `NotFound` for
    /// NXDOMAIN, NODATA and a name DNS cannot carry.
    async fn query(&self, name: Name, rtype: RecordType) -> Result<Vec<RData>, LookupError> {
        match self.resolver.lookup(name, rtype).await {
            Ok(lookup) => {
                let records: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect();
                if records.is_empty() {
                    Err(LookupError::NotFound)
                } else {
                    Ok(records)
                }
            }
            Err(e) if e.is_no_records_found() => Err(LookupError::NotFound),
            Err(e) => Err(LookupError::Temporary(e.to_string())),
        }
    }

    async fn query_name(&self, name: &str, rtype: RecordType) -> Result<Vec<RData>, LookupError> {
        // Any octets make a DNS label (RFC 2181 §11): SPF names like `foo:bar/baz.example.com`
        // are queried as they are, without IDNA processing or hostname rules.
        let labels = name.split('.').filter(|l| !l.is_empty()).map(str::as_bytes);
        let Ok(mut name) = Name::from_labels(labels) else {
            return Err(LookupError::NotFound);
        };
        name.set_fqdn(true);
        self.query(name, rtype).await
    }
}

impl Lookup for SpfDns<'_> {
    async fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, LookupError> {
        Ok(self
            .query_name(name, RecordType::TXT)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::TXT(txt) => Some(txt.txt_data.concat()),
                _ => None,
            })
            .collect())
    }

    async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, LookupError> {
        Ok(self
            .query_name(name, RecordType::A)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    async fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, LookupError> {
        Ok(self
            .query_name(name, RecordType::AAAA)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    async fn mx(&self, name: &str) -> Result<Vec<String>, LookupError> {
        Ok(self
            .query_name(name, RecordType::MX)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::MX(mx) => Some(text(&mx.exchange)),
                _ => None,
            })
            .collect())
    }

    async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, LookupError> {
        Ok(self
            .query(Name::from(ip), RecordType::PTR)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::PTR(ptr) => Some(text(&ptr.0)),
                _ => None,
            })
            .collect())
    }
}

/// A name's labels as they are on the wire, joined by dots: `to_ascii` would escape octets like
/// `:` and `/`, which SPF then looks up as they are.
fn text(name: &Name) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|label| String::from_utf8_lossy(label).into_owned())
        .collect();
    labels.join(".")
}
