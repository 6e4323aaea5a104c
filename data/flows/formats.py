"""The flow-record formats Seer reads: which columns a file has, which the model uses, how each is
treated, and what the labels are.

- `netflow-v2`: the NetFlow v2 standard feature set of Sarhan, Layeghy & Portmann (MONET 2021), 43
  features, shared by every NF-*-v2 dataset (NF-BoT-IoT-v2, NF-ToN-IoT-v2, NF-UNSW-NB15-v2, ...), so a
  model trained on one capture reads any other without code changes. Used: the 37 features of
  FlowTransformer's `unified_flow_format`, 9 of them categorical. Left out: the two IPv4 addresses
  (identifiers of the testbed's hosts: a model that reads them learns which machines were attackers
  in that capture, not what an attack looks like, so they are never features and never identifiers
  for a lookup either) and the four DNS/FTP fields FlowTransformer drops.
  Labels: `Attack` (class name, "Benign" for normal traffic) and `Label` (0/1).
- `nsl-kdd`: NSL-KDD connection records (Tavallaee et al., CISDA 2009): 41 features, then the attack
  name and a difficulty level (dropped: it is derived from how many classifiers got the record right,
  so it leaks the answer); no header. Categorical: the 7 fields of FlowTransformer's `nsl_kdd`
  specification. Labels: the attack name, "normal" for normal traffic; `category` maps it to
  dos/probe/r2l/u2r (the 22 training attacks by the dataset's own `Attack Types.csv`, the test-only
  attacks by the DARPA'98/'99 attack taxonomy).
"""

from __future__ import annotations

from dataclasses import dataclass

NETFLOW_V2_FEATURES = (
    "IPV4_SRC_ADDR", "L4_SRC_PORT", "IPV4_DST_ADDR", "L4_DST_PORT", "PROTOCOL", "L7_PROTO", "IN_BYTES",
    "IN_PKTS", "OUT_BYTES", "OUT_PKTS", "TCP_FLAGS", "CLIENT_TCP_FLAGS", "SERVER_TCP_FLAGS",
    "FLOW_DURATION_MILLISECONDS", "DURATION_IN", "DURATION_OUT", "MIN_TTL", "MAX_TTL", "LONGEST_FLOW_PKT",
    "SHORTEST_FLOW_PKT", "MIN_IP_PKT_LEN", "MAX_IP_PKT_LEN", "SRC_TO_DST_SECOND_BYTES", "DST_TO_SRC_SECOND_BYTES",
    "RETRANSMITTED_IN_BYTES", "RETRANSMITTED_IN_PKTS", "RETRANSMITTED_OUT_BYTES", "RETRANSMITTED_OUT_PKTS",
    "SRC_TO_DST_AVG_THROUGHPUT", "DST_TO_SRC_AVG_THROUGHPUT", "NUM_PKTS_UP_TO_128_BYTES",
    "NUM_PKTS_128_TO_256_BYTES", "NUM_PKTS_256_TO_512_BYTES", "NUM_PKTS_512_TO_1024_BYTES",
    "NUM_PKTS_1024_TO_1514_BYTES", "TCP_WIN_MAX_IN", "TCP_WIN_MAX_OUT", "ICMP_TYPE", "ICMP_IPV4_TYPE",
    "DNS_QUERY_ID", "DNS_QUERY_TYPE", "DNS_TTL_ANSWER", "FTP_COMMAND_RET_CODE",
)  # fmt: skip
NETFLOW_V2_UNUSED = (
    "IPV4_SRC_ADDR", "IPV4_DST_ADDR", "DNS_QUERY_ID", "DNS_QUERY_TYPE", "DNS_TTL_ANSWER", "FTP_COMMAND_RET_CODE",
)  # fmt: skip
NETFLOW_V2_CATEGORICAL = (
    "CLIENT_TCP_FLAGS", "L4_SRC_PORT", "TCP_FLAGS", "ICMP_IPV4_TYPE", "ICMP_TYPE", "PROTOCOL", "SERVER_TCP_FLAGS",
    "L4_DST_PORT", "L7_PROTO",
)  # fmt: skip

NSL_KDD_FEATURES = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land", "wrong_fragment", "urgent",
    "hot", "num_failed_logins", "logged_in", "num_compromised", "root_shell", "su_attempted", "num_root",
    "num_file_creations", "num_shells", "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login",
    "count", "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate", "same_srv_rate",
    "diff_srv_rate", "srv_diff_host_rate", "dst_host_count", "dst_host_srv_count", "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate", "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)  # fmt: skip
NSL_KDD_CATEGORICAL = ("protocol_type", "service", "flag", "land", "logged_in", "is_host_login", "is_guest_login")
NSL_KDD_STRING_FEATURES = ("protocol_type", "service", "flag")  # the three symbolic fields; the rest are numbers

# NSL-KDD attack -> category. The 22 attacks of KDDTrain+ as in the dataset's `Attack Types.csv`; the 17
# attacks found only in KDDTest+ by the DARPA'98/'99 intrusion detection evaluation's taxonomy.
NSL_KDD_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(("back", "land", "neptune", "pod", "smurf", "teardrop"), "dos"),
    **dict.fromkeys(("apache2", "mailbomb", "processtable", "udpstorm"), "dos"),
    **dict.fromkeys(("ipsweep", "nmap", "portsweep", "satan"), "probe"),
    **dict.fromkeys(("mscan", "saint"), "probe"),
    **dict.fromkeys(("ftp_write", "guess_passwd", "imap", "multihop", "phf", "spy"), "r2l"),
    **dict.fromkeys(("warezclient", "warezmaster"), "r2l"),
    **dict.fromkeys(("httptunnel", "named", "sendmail", "snmpgetattack", "snmpguess"), "r2l"),
    **dict.fromkeys(("worm", "xlock", "xsnoop"), "r2l"),
    **dict.fromkeys(("buffer_overflow", "loadmodule", "perl", "rootkit"), "u2r"),
    **dict.fromkeys(("ps", "sqlattack", "xterm"), "u2r"),
    "normal": "normal",
}  # fmt: skip


@dataclass(frozen=True)
class FlowFormat:
    """A flow-record file layout. `features`: every feature column of the format, in file order;
    `unused`: those the model never reads (identifiers, leaky or empty fields); `categorical`: the
    used ones top-k encoded; `label_columns`: what a labelled file adds (never model input);
    `class_column`: the column holding the class name; `benign`: its value for normal traffic;
    `labels`: the label modes (`binary` = benign vs attack; others name the classes kept)."""

    name: str
    features: tuple[str, ...]
    unused: tuple[str, ...]
    categorical: tuple[str, ...]
    string_features: tuple[str, ...]  # features whose values are text (the rest must be numbers)
    label_columns: tuple[str, ...]
    class_column: str
    benign: str
    labels: tuple[str, ...]
    has_header: bool = True

    @property
    def used(self) -> tuple[str, ...]:
        return tuple(f for f in self.features if f not in self.unused)

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f for f in self.used if f not in self.categorical)

    @property
    def known_columns(self) -> tuple[str, ...]:
        """Every column a record of this format may carry: features, used or not, and labels."""
        return (*self.features, *self.label_columns)


NETFLOW_V2 = FlowFormat(
    name="netflow-v2",
    features=NETFLOW_V2_FEATURES,
    unused=NETFLOW_V2_UNUSED,
    categorical=NETFLOW_V2_CATEGORICAL,
    string_features=("IPV4_SRC_ADDR", "IPV4_DST_ADDR"),
    label_columns=("Label", "Attack", "Dataset"),
    class_column="Attack",
    benign="Benign",
    labels=("binary", "attack"),
)
NSL_KDD = FlowFormat(
    name="nsl-kdd",
    features=NSL_KDD_FEATURES,
    unused=("num_outbound_cmds",),  # constant 0 in every NSL-KDD file
    categorical=NSL_KDD_CATEGORICAL,
    string_features=NSL_KDD_STRING_FEATURES,
    label_columns=("label", "difficulty"),
    class_column="label",
    benign="normal",
    labels=("binary", "category"),
    has_header=False,
)
FORMATS: dict[str, FlowFormat] = {f.name: f for f in (NETFLOW_V2, NSL_KDD)}


def get_format(name: str) -> FlowFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown flow format {name!r}; formats: {', '.join(FORMATS)}") from None
