/* How long a flow lives after its last packet, in seconds, by protocol and
 * state: the one definition for every backend, plain C so that the eBPF
 * programs (dataplane/ebpf/atoll_conntrack.h) include it as well as
 * lb::ConntrackConfig, whose defaults serve the in-process and DPDK backends.
 *
 * TCP follows Cilium's: an established flow lives 6 hours, not the 5 days of
 * Linux's nf_conntrack, because a table of fixed size would otherwise fill
 * with connections whose ends vanished without a FIN. UDP and ICMP follow
 * nf_conntrack's. */
#ifndef ATOLL_LB_CONNTRACK_TIMEOUTS_H_
#define ATOLL_LB_CONNTRACK_TIMEOUTS_H_

#define ATL_CT_TCP_SYN_S 60             /* the handshake, until both sides have spoken */
#define ATL_CT_TCP_ESTABLISHED_S 21600  /* 6 h */
#define ATL_CT_TCP_FIN_WAIT_S 120       /* one side sent FIN */
#define ATL_CT_TCP_CLOSING_S 10         /* both sides sent FIN, or a RST */
#define ATL_CT_UDP_UNREPLIED_S 30
#define ATL_CT_UDP_REPLIED_S 120
#define ATL_CT_ICMP_S 30
#define ATL_CT_OTHER_S 60

#endif /* ATOLL_LB_CONNTRACK_TIMEOUTS_H_ */
