package drill

import "golang.org/x/sys/unix"

// symbols are the named constants call arguments and assertions may use,
// with Linux's values.
var symbols = map[string]int64{
	"AF_INET": unix.AF_INET, "AF_INET6": unix.AF_INET6, "AF_UNSPEC": unix.AF_UNSPEC,
	"PF_INET": unix.AF_INET, "PF_INET6": unix.AF_INET6,
	"SOCK_STREAM": unix.SOCK_STREAM, "SOCK_DGRAM": unix.SOCK_DGRAM, "SOCK_NONBLOCK": unix.SOCK_NONBLOCK,
	"IPPROTO_TCP": unix.IPPROTO_TCP, "IPPROTO_IP": unix.IPPROTO_IP, "IPPROTO_IPV6": unix.IPPROTO_IPV6,
	"IPPROTO_UDP": unix.IPPROTO_UDP,
	"SOL_SOCKET":  unix.SOL_SOCKET, "SOL_TCP": unix.SOL_TCP, "SOL_IP": unix.SOL_IP, "SOL_IPV6": unix.SOL_IPV6,

	"SO_REUSEADDR": unix.SO_REUSEADDR, "SO_REUSEPORT": unix.SO_REUSEPORT, "SO_KEEPALIVE": unix.SO_KEEPALIVE,
	"SO_LINGER": unix.SO_LINGER, "SO_RCVBUF": unix.SO_RCVBUF, "SO_SNDBUF": unix.SO_SNDBUF,
	"SO_ERROR": unix.SO_ERROR, "SO_ZEROCOPY": unix.SO_ZEROCOPY, "SO_TIMESTAMPING": unix.SO_TIMESTAMPING,
	"SO_MARK": unix.SO_MARK, "SO_RCVLOWAT": unix.SO_RCVLOWAT, "SO_SNDLOWAT": unix.SO_SNDLOWAT,
	"SO_MAX_PACING_RATE": unix.SO_MAX_PACING_RATE, "SO_PRIORITY": unix.SO_PRIORITY,
	"SO_RCVTIMEO": unix.SO_RCVTIMEO, "SO_SNDTIMEO": unix.SO_SNDTIMEO, "SO_BINDTODEVICE": unix.SO_BINDTODEVICE,
	"SO_OOBINLINE": unix.SO_OOBINLINE, "SO_TYPE": unix.SO_TYPE, "SO_ACCEPTCONN": unix.SO_ACCEPTCONN,

	"TCP_NODELAY": unix.TCP_NODELAY, "TCP_MAXSEG": unix.TCP_MAXSEG, "TCP_CORK": unix.TCP_CORK,
	"TCP_KEEPIDLE": unix.TCP_KEEPIDLE, "TCP_KEEPINTVL": unix.TCP_KEEPINTVL, "TCP_KEEPCNT": unix.TCP_KEEPCNT,
	"TCP_SYNCNT": unix.TCP_SYNCNT, "TCP_LINGER2": unix.TCP_LINGER2, "TCP_DEFER_ACCEPT": unix.TCP_DEFER_ACCEPT,
	"TCP_WINDOW_CLAMP": unix.TCP_WINDOW_CLAMP, "TCP_INFO": unix.TCP_INFO, "TCP_QUICKACK": unix.TCP_QUICKACK,
	"TCP_CONGESTION": unix.TCP_CONGESTION, "TCP_MD5SIG": unix.TCP_MD5SIG, "TCP_THIN_LINEAR_TIMEOUTS": unix.TCP_THIN_LINEAR_TIMEOUTS,
	"TCP_USER_TIMEOUT": unix.TCP_USER_TIMEOUT, "TCP_FASTOPEN": unix.TCP_FASTOPEN,
	"TCP_FASTOPEN_CONNECT": unix.TCP_FASTOPEN_CONNECT, "TCP_FASTOPEN_KEY": unix.TCP_FASTOPEN_KEY, "TCP_FASTOPEN_NO_COOKIE": unix.TCP_FASTOPEN_NO_COOKIE,
	"TCP_NOTSENT_LOWAT": unix.TCP_NOTSENT_LOWAT, "TCP_INQ": unix.TCP_INQ, "TCP_CM_INQ": unix.TCP_CM_INQ,
	"TCP_ZEROCOPY_RECEIVE": unix.TCP_ZEROCOPY_RECEIVE, "TCP_TX_DELAY": 37, "TCP_REPAIR": unix.TCP_REPAIR,
	"TCP_SAVE_SYN": unix.TCP_SAVE_SYN, "TCP_SAVED_SYN": unix.TCP_SAVED_SYN, "TCP_ULP": unix.TCP_ULP,

	"IP_TOS": unix.IP_TOS, "IP_TTL": unix.IP_TTL, "IP_MTU_DISCOVER": unix.IP_MTU_DISCOVER,
	"IP_FREEBIND": unix.IP_FREEBIND, "IP_MTU": unix.IP_MTU, "IP_RECVERR": unix.IP_RECVERR,
	"IP_PMTUDISC_DONT": unix.IP_PMTUDISC_DONT, "IP_PMTUDISC_WANT": unix.IP_PMTUDISC_WANT,
	"IP_PMTUDISC_DO": unix.IP_PMTUDISC_DO, "IP_PMTUDISC_PROBE": unix.IP_PMTUDISC_PROBE,
	"IPV6_TCLASS": unix.IPV6_TCLASS, "IPV6_MTU_DISCOVER": unix.IPV6_MTU_DISCOVER, "IPV6_V6ONLY": unix.IPV6_V6ONLY,
	"IPV6_UNICAST_HOPS": unix.IPV6_UNICAST_HOPS,

	"O_RDONLY": unix.O_RDONLY, "O_WRONLY": unix.O_WRONLY, "O_RDWR": unix.O_RDWR, "O_NONBLOCK": unix.O_NONBLOCK,
	"F_GETFL": unix.F_GETFL, "F_SETFL": unix.F_SETFL,

	"MSG_OOB": unix.MSG_OOB, "MSG_PEEK": unix.MSG_PEEK, "MSG_DONTWAIT": unix.MSG_DONTWAIT,
	"MSG_NOSIGNAL": unix.MSG_NOSIGNAL, "MSG_MORE": unix.MSG_MORE, "MSG_EOR": unix.MSG_EOR,
	"MSG_TRUNC": unix.MSG_TRUNC, "MSG_WAITALL": unix.MSG_WAITALL, "MSG_ERRQUEUE": unix.MSG_ERRQUEUE,
	"MSG_FASTOPEN": unix.MSG_FASTOPEN, "MSG_ZEROCOPY": unix.MSG_ZEROCOPY, "MSG_CTRUNC": unix.MSG_CTRUNC,

	"SHUT_RD": unix.SHUT_RD, "SHUT_WR": unix.SHUT_WR, "SHUT_RDWR": unix.SHUT_RDWR,

	"POLLIN": unix.POLLIN, "POLLPRI": unix.POLLPRI, "POLLOUT": unix.POLLOUT, "POLLERR": unix.POLLERR,
	"POLLHUP": unix.POLLHUP, "POLLNVAL": unix.POLLNVAL, "POLLRDHUP": unix.POLLRDHUP,
	"POLLRDNORM": 0x40, "POLLWRNORM": 0x100, "POLLRDBAND": 0x80, "POLLWRBAND": 0x200,
	"EPOLLIN": unix.EPOLLIN, "EPOLLPRI": unix.EPOLLPRI, "EPOLLOUT": unix.EPOLLOUT, "EPOLLERR": unix.EPOLLERR,
	"EPOLLHUP": unix.EPOLLHUP, "EPOLLRDHUP": unix.EPOLLRDHUP, "EPOLLRDNORM": unix.EPOLLRDNORM, "EPOLLWRNORM": unix.EPOLLWRNORM,
	"EPOLLET": unix.EPOLLET, "EPOLLONESHOT": unix.EPOLLONESHOT, "EPOLLEXCLUSIVE": unix.EPOLLEXCLUSIVE,
	"EPOLL_CTL_ADD": unix.EPOLL_CTL_ADD, "EPOLL_CTL_MOD": unix.EPOLL_CTL_MOD, "EPOLL_CTL_DEL": unix.EPOLL_CTL_DEL,
	"EPOLL_CLOEXEC": unix.EPOLL_CLOEXEC,

	"SIOCINQ": unix.SIOCINQ, "SIOCOUTQ": unix.SIOCOUTQ, "SIOCOUTQNSD": unix.SIOCOUTQNSD, "FIONREAD": unix.SIOCINQ,

	// tcpi_ca_state values (include/uapi/linux/tcp.h).
	"TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2, "TCP_CA_Recovery": 3, "TCP_CA_Loss": 4,
	// tcpi_state values (include/net/tcp_states.h).
	"TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4, "TCP_FIN_WAIT2": 5,
	"TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8, "TCP_LAST_ACK": 9, "TCP_LISTEN": 10, "TCP_CLOSING": 11,
	// tcpi_options bits.
	"TCPI_OPT_TIMESTAMPS": 1, "TCPI_OPT_SACK": 2, "TCPI_OPT_WSCALE": 4, "TCPI_OPT_ECN": 8,
	"TCPI_OPT_ECN_SEEN": 16, "TCPI_OPT_SYN_DATA": 32,
}

// features names the option, flag and call symbols of features the
// non-Linux DUTs do not have, for "unsupported by the DUT" reports.
var features = map[string]string{
	"TCP_FASTOPEN": "TCP Fast Open", "TCP_FASTOPEN_CONNECT": "TCP Fast Open", "TCP_FASTOPEN_KEY": "TCP Fast Open",
	"TCP_FASTOPEN_NO_COOKIE": "TCP Fast Open", "MSG_FASTOPEN": "TCP Fast Open",
	"SO_ZEROCOPY": "zerocopy", "MSG_ZEROCOPY": "zerocopy", "TCP_ZEROCOPY_RECEIVE": "zerocopy",
	"TCP_MD5SIG": "TCP MD5 signatures", "SO_TIMESTAMPING": "SO_TIMESTAMPING", "MSG_ERRQUEUE": "socket error queue",
	"TCP_INQ": "TCP_INQ", "TCP_CM_INQ": "TCP_INQ", "TCP_NOTSENT_LOWAT": "TCP_NOTSENT_LOWAT",
	"TCP_CORK": "TCP_CORK", "MSG_MORE": "MSG_MORE", "MSG_EOR": "MSG_EOR", "SO_MARK": "SO_MARK",
	"IP_FREEBIND": "IP_FREEBIND", "TCP_REPAIR": "TCP_REPAIR", "TCP_ULP": "TCP ULP",
}

// Features named by a setting or a shell line rather than a symbol.
const (
	featureECN    = "ECN (RFC 3168)"
	featureAccECN = "AccECN (RFC 9768)"
	// A local qdisc that drops every packet (`tc qdisc ... limit 0`):
	// the script tests how the stack treats its own device refusing
	// packets (Linux retries every TCP_RESOURCE_PROBE_INTERVAL and
	// counts tcpi_probes); the virtual-time DUTs have no qdisc.
	featureQdiscDrops = "local qdisc drops (tc qdisc ... limit 0)"
)

// featurePrefixes name features by a symbol's prefix.
var featurePrefixes = map[string]string{
	"SOF_TIMESTAMPING_": "SO_TIMESTAMPING", "SCM_TSTAMP_": "SO_TIMESTAMPING", "SCM_TIMESTAMPING": "SO_TIMESTAMPING",
	"SO_EE_": "socket error queue", "CMSG_": "ancillary data (msg_control)",
}
