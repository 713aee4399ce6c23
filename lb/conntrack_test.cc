#include "lb/conntrack.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "lb/packet.h"

namespace atl::lb {

// Lets gtest print a state by name rather than as a byte.
void PrintTo(CtState state, std::ostream* os) { *os << CtStateName(state); }

namespace {

using ::testing::HasSubstr;

constexpr uint64_t kSec = 1'000'000'000;
constexpr uint8_t kSyn = kTcpSyn;
constexpr uint8_t kSynAck = kTcpSyn | kTcpAck;
constexpr uint8_t kAck = kTcpAck;
constexpr uint8_t kFinAck = kTcpFin | kTcpAck;
constexpr uint8_t kRst = kTcpRst;

// Short, distinct timeouts so that each expiry time names the state it came from.
ConntrackConfig TestConfig(uint32_t max_flows = 1024) {
  ConntrackConfig c;
  c.max_flows = max_flows;
  c.tcp_syn_s = 5;
  c.tcp_established_s = 100;
  c.tcp_fin_wait_s = 20;
  c.tcp_closing_s = 3;
  c.udp_unreplied_s = 7;
  c.udp_replied_s = 30;
  c.icmp_s = 9;
  c.other_s = 11;
  return c;
}

std::unique_ptr<ConntrackShard> NewShard(const ConntrackConfig& config) {
  absl::StatusOr<std::unique_ptr<ConntrackShard>> shard = ConntrackShard::Create(config);
  EXPECT_TRUE(shard.ok()) << shard.status();
  return shard.ok() ? *std::move(shard) : nullptr;
}

const IpAddr kVip = IpAddr::V4(0xc0000201);      // 192.0.2.1
const IpAddr kBackend = IpAddr::V4(0xc6130205);  // 198.19.2.5

// A client reaching the service VIP:80, NAT'd to backend:8080. Clients differ
// by source port.
struct Conn {
  FlowKey original;  // client -> VIP:80
  FlowKey reply;     // backend:8080 -> client
};
Conn ClientConn(uint16_t client_port, IpProto proto = IpProto::kTcp) {
  Conn c;
  c.original.src = IpAddr::V4(0xc6130101);  // 198.19.1.1
  c.original.dst = kVip;
  c.original.src_port = client_port;
  c.original.dst_port = 80;
  c.original.proto = proto;
  c.reply.src = kBackend;
  c.reply.dst = c.original.src;
  c.reply.src_port = 8080;
  c.reply.dst_port = client_port;
  c.reply.proto = proto;
  return c;
}

class ConntrackTest : public ::testing::Test {
 protected:
  ConntrackShard::Hit Lookup(const FlowKey& key, uint64_t now) {
    return ct_->Lookup(key, ct_->Hash(key), now);
  }
  uint32_t Create(const Conn& c, uint8_t flags, uint64_t now) {
    return ct_->Insert(c.original, ct_->Hash(c.original), c.reply, flags, now);
  }
  CtState State(uint32_t id) const { return ct_->flow(id).state; }
  uint64_t Expires(uint32_t id) const { return ct_->flow(id).expires_ns; }

  std::unique_ptr<ConntrackShard> ct_ = NewShard(TestConfig());
};

TEST(ConntrackCreateTest, RejectsBadSizes) {
  for (uint32_t max_flows : {0u, 1u << 30, 0xffffffffu}) {
    ConntrackConfig c;
    c.max_flows = max_flows;
    absl::StatusOr<std::unique_ptr<ConntrackShard>> shard = ConntrackShard::Create(c);
    ASSERT_FALSE(shard.ok()) << max_flows;
    EXPECT_EQ(shard.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(shard.status().message(), HasSubstr("max_flows " + std::to_string(max_flows)));
  }
  ConntrackConfig c;
  c.max_flows = 16;
  c.eviction_scan = 0;
  absl::StatusOr<std::unique_ptr<ConntrackShard>> shard = ConntrackShard::Create(c);
  ASSERT_FALSE(shard.ok());
  EXPECT_THAT(shard.status().message(), HasSubstr("eviction_scan 0"));
}

TEST(ConntrackCreateTest, AcceptsOneFlow) {
  ConntrackConfig c;
  c.max_flows = 1;
  std::unique_ptr<ConntrackShard> ct = NewShard(c);
  ASSERT_NE(ct, nullptr);
  EXPECT_EQ(ct->capacity(), 1u);
  EXPECT_EQ(ct->size(), 0u);
}

// A shard not given a seed draws its own, so its index places flows where
// no one outside can work out: two such shards hash a key alike only by a
// 2^-32 chance. Given one, it keeps it.
TEST(ConntrackCreateTest, DrawsAHashSeedOfItsOwnUnlessGiven) {
  ConntrackConfig config;
  config.max_flows = 16;
  ASSERT_EQ(config.hash_seed, 0u);
  auto a = ConntrackShard::Create(config);
  auto b = ConntrackShard::Create(config);
  ASSERT_TRUE(a.ok() && b.ok());
  int alike = 0;
  for (uint16_t port = 40000; port < 40004; ++port) {
    const FlowKey k = ClientConn(port).original;
    if ((*a)->Hash(k) == (*b)->Hash(k)) ++alike;
    // Neither is Maglev's seed, which is published.
    EXPECT_NE((*a)->Hash(k), FlowHash(k, kMaglevSeed));
  }
  EXPECT_LT(alike, 4);
  config.hash_seed = 0x6a09e667;
  auto c = ConntrackShard::Create(config);
  auto d = ConntrackShard::Create(config);
  ASSERT_TRUE(c.ok() && d.ok());
  const FlowKey k = ClientConn(40000).original;
  EXPECT_EQ((*c)->Hash(k), (*d)->Hash(k));
  EXPECT_NE((*c)->Hash(k), (*a)->Hash(k));
}

// The index hashes an IPv4 key as three words with its protocol in the
// seed: the protocol still tells flows apart, and flows that differ only in
// a few bits (one client's ports, a few clients) spread as evenly as random
// keys would: about 1/e of 65,536 slots left empty by as many keys.
TEST(ConntrackCreateTest, HashesIpv4KeysEvenly) {
  ConntrackConfig config;
  config.max_flows = 16;
  auto ct = ConntrackShard::Create(config);
  ASSERT_TRUE(ct.ok());
  FlowKey tcp = ClientConn(40000).original;
  FlowKey udp = tcp;
  udp.proto = IpProto::kUdp;
  EXPECT_NE((*ct)->Hash(tcp), (*ct)->Hash(udp));
  std::vector<uint16_t> load(1 << 16);
  for (uint32_t client = 0; client < 16; ++client) {
    for (uint32_t port = 0; port < 4096; ++port) {
      FlowKey k = tcp;
      k.src = IpAddr::V4(0xc6120001u + client);  // 198.18.0.1 on
      k.src_port = static_cast<uint16_t>(32768 + port);
      ++load[(*ct)->Hash(k) & 0xffff];
    }
  }
  const auto empty = std::count(load.begin(), load.end(), 0);
  EXPECT_NEAR(static_cast<double>(empty) / load.size(), 0.3679, 0.01);
  EXPECT_LE(*std::max_element(load.begin(), load.end()), 10);
}

TEST_F(ConntrackTest, TcpHandshakeAndTeardown) {
  const Conn c = ClientConn(40000);
  uint64_t now = 1000 * kSec;
  const uint32_t id = Create(c, kSyn, now);
  ASSERT_NE(id, ConntrackShard::kNoFlow);
  EXPECT_EQ(State(id), CtState::kSynSent);
  EXPECT_EQ(Expires(id), now + 5 * kSec);
  EXPECT_EQ(ct_->size(), 1u);
  EXPECT_EQ(ct_->stats().created, 1u);

  now += kSec;
  ct_->Update(id, CtDir::kReply, kSynAck, now);
  EXPECT_EQ(State(id), CtState::kSynRecv);
  EXPECT_EQ(Expires(id), now + 5 * kSec);

  now += kSec;
  ct_->Update(id, CtDir::kOriginal, kAck, now);
  EXPECT_EQ(State(id), CtState::kEstablished);
  EXPECT_EQ(Expires(id), now + 100 * kSec);

  // Data both ways keeps it established and pushes the expiry on.
  now += 50 * kSec;
  ct_->Update(id, CtDir::kReply, kAck | kTcpPsh, now);
  EXPECT_EQ(State(id), CtState::kEstablished);
  EXPECT_EQ(Expires(id), now + 100 * kSec);

  now += kSec;
  ct_->Update(id, CtDir::kOriginal, kFinAck, now);
  EXPECT_EQ(State(id), CtState::kFinWait);
  EXPECT_EQ(Expires(id), now + 20 * kSec);

  // The last ACK of a half-close does not change the state.
  now += kSec;
  ct_->Update(id, CtDir::kReply, kAck, now);
  EXPECT_EQ(State(id), CtState::kFinWait);

  now += kSec;
  ct_->Update(id, CtDir::kReply, kFinAck, now);
  EXPECT_EQ(State(id), CtState::kTimeWait);
  EXPECT_EQ(Expires(id), now + 3 * kSec);

  now += kSec;
  ct_->Update(id, CtDir::kOriginal, kAck, now);
  EXPECT_EQ(State(id), CtState::kTimeWait);
  EXPECT_EQ(Expires(id), now + 3 * kSec);

  EXPECT_TRUE(Lookup(c.original, now + 3 * kSec - 1).found());
  EXPECT_FALSE(Lookup(c.original, now + 3 * kSec).found());
}

TEST_F(ConntrackTest, RstClosesTheFlowFromEitherSide) {
  for (CtDir dir : {CtDir::kOriginal, CtDir::kReply}) {
    const Conn c = ClientConn(dir == CtDir::kOriginal ? 40001 : 40002);
    const uint32_t id = Create(c, kAck, 0);
    ASSERT_EQ(State(id), CtState::kEstablished);
    ct_->Update(id, dir, kRst | kAck, 10 * kSec);
    EXPECT_EQ(State(id), CtState::kClosed);
    EXPECT_EQ(Expires(id), 13 * kSec);
  }
}

// Segments still in flight after a RST (an ACK of earlier data, the peer's
// FIN) must not give the dead flow the longer half-close timeout back.
TEST_F(ConntrackTest, ClosedStaysClosedAfterLateSegments) {
  const Conn c = ClientConn(40003);
  const uint32_t id = Create(c, kAck, 0);
  ct_->Update(id, CtDir::kOriginal, kFinAck, kSec);
  ASSERT_EQ(State(id), CtState::kFinWait);
  ct_->Update(id, CtDir::kReply, kRst, 2 * kSec);
  ASSERT_EQ(State(id), CtState::kClosed);

  ct_->Update(id, CtDir::kOriginal, kAck, 3 * kSec);
  EXPECT_EQ(State(id), CtState::kClosed);
  EXPECT_EQ(Expires(id), 6 * kSec);
  ct_->Update(id, CtDir::kReply, kFinAck, 4 * kSec);
  EXPECT_EQ(State(id), CtState::kClosed);
  EXPECT_EQ(Expires(id), 7 * kSec);
}

TEST_F(ConntrackTest, FlowFirstSeenMidStreamIsEstablished) {
  uint16_t port = 41000;
  for (uint8_t flags : {kAck, static_cast<uint8_t>(kAck | kTcpPsh), kSynAck}) {
    const uint32_t id = Create(ClientConn(port++), flags, 0);
    EXPECT_EQ(State(id), CtState::kEstablished) << static_cast<int>(flags);
    // Until the other side answers it lives as briefly as a handshake, and may
    // be evicted: a stray ACK must not hold an entry for hours.
    EXPECT_EQ(Expires(id), 5 * kSec);
    EXPECT_TRUE(ct_->flow(id).Evictable());
    // More of the same side keeps it short.
    ct_->Update(id, CtDir::kOriginal, kAck, 2 * kSec);
    EXPECT_EQ(State(id), CtState::kEstablished);
    EXPECT_EQ(Expires(id), 7 * kSec);
    ct_->Update(id, CtDir::kReply, kAck, 3 * kSec);
    EXPECT_EQ(Expires(id), 3 * kSec + 100 * kSec);
    EXPECT_FALSE(ct_->flow(id).Evictable());
  }
}

TEST_F(ConntrackTest, StrayFinOrRstDoesNotPinAnEstablishedEntry) {
  // A first packet that closes is tracked with the closing timeouts, so a
  // flood of stray FINs or RSTs cannot fill the table for hours.
  const uint32_t fin = Create(ClientConn(41100), kFinAck, 0);
  EXPECT_EQ(State(fin), CtState::kFinWait);
  EXPECT_EQ(Expires(fin), 20 * kSec);
  const uint32_t rst = Create(ClientConn(41101), kRst, 0);
  EXPECT_EQ(State(rst), CtState::kClosed);
  EXPECT_EQ(Expires(rst), 3 * kSec);
}

// A client's SYN on the tuple of a connection that is over (both FINs, or a
// RST) opens a new one, which its caller balances afresh (lb::Reopens):
// nothing else does, and the shard itself does not revive the old flow.
TEST_F(ConntrackTest, ANewSynReopensOnlyAFinishedFlow) {
  for (bool by_rst : {false, true}) {
    const uint32_t id = Create(ClientConn(by_rst ? 42001 : 42000), kAck, 0);
    EXPECT_FALSE(Reopens(ct_->flow(id), CtDir::kOriginal, kSyn)) << "established";
    if (by_rst) {
      ct_->Update(id, CtDir::kOriginal, kRst, kSec);
    } else {
      ct_->Update(id, CtDir::kOriginal, kFinAck, kSec);
      EXPECT_FALSE(Reopens(ct_->flow(id), CtDir::kOriginal, kSyn)) << "half-closed";
      ct_->Update(id, CtDir::kReply, kFinAck, kSec);
    }
    const Flow& over = ct_->flow(id);
    ASSERT_TRUE(IsFinished(over)) << CtStateName(over.state);
    EXPECT_TRUE(Reopens(over, CtDir::kOriginal, kSyn));
    EXPECT_FALSE(Reopens(over, CtDir::kReply, kSyn)) << "only the client opens";
    EXPECT_FALSE(Reopens(over, CtDir::kOriginal, kSynAck));
    EXPECT_FALSE(Reopens(over, CtDir::kOriginal, kAck));

    const CtState before = over.state;
    ct_->Update(id, CtDir::kOriginal, kSyn, 2 * kSec);
    EXPECT_EQ(State(id), before) << "the shard does not reopen it itself";
  }
  const uint32_t udp = Create(ClientConn(42002, IpProto::kUdp), 0, 0);
  EXPECT_FALSE(Reopens(ct_->flow(udp), CtDir::kOriginal, kSyn));
}

// A reply tuple is one flow's while that flow lives. A finished TCP
// connection gives it up to a new connection's SYN (a client recycling its
// port to reach the same backend through another service), and an expired
// flow to anyone.
TEST_F(ConntrackTest, ANewFlowTakesTheReplyTupleOnlyOfAFlowThatIsOver) {
  const Conn old_conn = ClientConn(42200);
  Conn other = old_conn;  // the same client port, to another VIP, NAT'd to the same backend
  other.original.dst = IpAddr::V4(0xc0000202);
  const uint32_t old_id = Create(old_conn, kSyn, 0);
  ct_->Update(old_id, CtDir::kReply, kSynAck, 0);
  ct_->Update(old_id, CtDir::kOriginal, kAck, 0);
  EXPECT_EQ(Create(other, kSyn, kSec), ConntrackShard::kNoFlow) << "the flow is established";
  ct_->Update(old_id, CtDir::kOriginal, kFinAck, kSec);
  EXPECT_EQ(Create(other, kSyn, kSec), ConntrackShard::kNoFlow) << "half-closed is not over";
  ct_->Update(old_id, CtDir::kReply, kFinAck, kSec);
  ASSERT_EQ(State(old_id), CtState::kTimeWait);
  EXPECT_EQ(Create(other, kAck, kSec), ConntrackShard::kNoFlow) << "only a SYN starts anew";
  EXPECT_EQ(ct_->stats().reply_taken, 3u);

  const uint32_t taken = Create(other, kSyn, 2 * kSec);
  ASSERT_NE(taken, ConntrackShard::kNoFlow);
  EXPECT_EQ(ct_->size(), 1u);
  EXPECT_FALSE(Lookup(old_conn.original, 2 * kSec).found()) << "the old flow went entirely";
  const ConntrackShard::Hit reply = Lookup(other.reply, 2 * kSec);
  EXPECT_EQ(reply.flow, taken);
  EXPECT_EQ(reply.dir, CtDir::kReply);

  // UDP has no end but its timeout: the tuple is free once the flow expired.
  const Conn udp = ClientConn(42201, IpProto::kUdp);
  Conn udp_other = udp;
  udp_other.original.dst = other.original.dst;
  Create(udp, 0, 0);
  EXPECT_EQ(Create(udp_other, 0, 7 * kSec - 1), ConntrackShard::kNoFlow);
  EXPECT_NE(Create(udp_other, 0, 7 * kSec), ConntrackShard::kNoFlow);
  EXPECT_EQ(ct_->stats().expired, 1u);
}

TEST_F(ConntrackTest, SynDoesNotResetALiveFlow) {
  const Conn c = ClientConn(42100);
  const uint32_t id = Create(c, kAck, 0);
  ct_->Update(id, CtDir::kOriginal, kSyn, kSec);
  EXPECT_EQ(State(id), CtState::kEstablished);
  ct_->Update(id, CtDir::kOriginal, kFinAck, kSec);
  ct_->Update(id, CtDir::kOriginal, kSyn, kSec);
  EXPECT_EQ(State(id), CtState::kFinWait);
  // Only the reply side's SYN-ACK moves a SYN_SENT flow on.
  const uint32_t fresh = Create(ClientConn(42101), kSyn, 0);
  ct_->Update(fresh, CtDir::kOriginal, kSynAck, kSec);
  EXPECT_EQ(State(fresh), CtState::kSynSent);
  ct_->Update(fresh, CtDir::kOriginal, kAck, kSec);
  EXPECT_EQ(State(fresh), CtState::kSynSent);
}

TEST_F(ConntrackTest, UdpUnrepliedThenReplied) {
  const Conn c = ClientConn(5353, IpProto::kUdp);
  const uint32_t id = Create(c, 0, 0);
  EXPECT_EQ(State(id), CtState::kUnreplied);
  EXPECT_EQ(Expires(id), 7 * kSec);
  EXPECT_TRUE(IsEmbryonic(State(id)));

  // More requests without an answer keep the short timeout.
  ct_->Update(id, CtDir::kOriginal, 0, 2 * kSec);
  EXPECT_EQ(State(id), CtState::kUnreplied);
  EXPECT_EQ(Expires(id), 9 * kSec);

  ct_->Update(id, CtDir::kReply, 0, 3 * kSec);
  EXPECT_EQ(State(id), CtState::kReplied);
  EXPECT_EQ(Expires(id), 33 * kSec);
  EXPECT_FALSE(IsEmbryonic(State(id)));

  ct_->Update(id, CtDir::kOriginal, 0, 4 * kSec);
  EXPECT_EQ(State(id), CtState::kReplied);
  EXPECT_EQ(Expires(id), 34 * kSec);
}

TEST_F(ConntrackTest, IcmpAndOtherProtocolsUseTheirTimeouts) {
  const uint32_t icmp = Create(ClientConn(77, IpProto::kIcmp), 0, 0);
  EXPECT_EQ(Expires(icmp), 9 * kSec);
  ct_->Update(icmp, CtDir::kReply, 0, kSec);
  EXPECT_EQ(State(icmp), CtState::kReplied);
  EXPECT_EQ(Expires(icmp), 10 * kSec);

  const uint32_t icmp6 = Create(ClientConn(78, IpProto::kIcmpV6), 0, 0);
  EXPECT_EQ(Expires(icmp6), 9 * kSec);

  const uint32_t sctp = Create(ClientConn(79, IpProto::kSctp), 0, 0);
  EXPECT_EQ(State(sctp), CtState::kUnreplied);
  EXPECT_EQ(Expires(sctp), 11 * kSec);
}

TEST_F(ConntrackTest, LookupFindsTheFlowFromBothDirections) {
  const Conn c = ClientConn(43000);
  const uint32_t id = ct_->Insert(c.original, ct_->Hash(c.original), c.reply, kSyn, 0,
                                  /*service=*/4, /*backend=*/2);

  const ConntrackShard::Hit out = Lookup(c.original, kSec);
  ASSERT_TRUE(out.found());
  EXPECT_EQ(out.flow, id);
  EXPECT_EQ(out.dir, CtDir::kOriginal);

  const ConntrackShard::Hit back = Lookup(c.reply, kSec);
  ASSERT_TRUE(back.found());
  EXPECT_EQ(back.flow, id);
  EXPECT_EQ(back.dir, CtDir::kReply);

  EXPECT_EQ(ct_->flow(id).service, 4u);
  EXPECT_EQ(ct_->flow(id).backend, 2u);

  // Neither the other client port, nor the VIP side of the reply, nor UDP on
  // the same ports is this flow.
  EXPECT_FALSE(Lookup(ClientConn(43001).original, kSec).found());
  EXPECT_FALSE(Lookup(c.original.Reversed(), kSec).found());
  EXPECT_FALSE(Lookup(ClientConn(43000, IpProto::kUdp).original, kSec).found());
}

// Lookup trusts a guess only when it names a live flow holding the key: a
// guess of another flow, of the other direction, of a flow gone since (its
// record free or reused) or no guess at all finds what the index finds.
TEST_F(ConntrackTest, LookupFromAGuessFindsWhatTheIndexFinds) {
  const Conn a = ClientConn(44000);
  const Conn b = ClientConn(44001);
  const uint32_t id_a = Create(a, kSyn, 0);
  const uint32_t id_b = Create(b, kSyn, 0);
  const auto lookup = [&](const FlowKey& key, uint32_t guess) {
    return ct_->Lookup(key, ct_->Hash(key), kSec, guess);
  };
  const uint32_t guess_a = ct_->Guess(ct_->Hash(a.original));
  EXPECT_EQ(guess_a, id_a << 1) << "the original direction of flow a";
  const uint32_t guess_a_reply = ct_->Guess(ct_->Hash(a.reply));
  EXPECT_EQ(guess_a_reply, id_a << 1 | 1);
  EXPECT_EQ(ct_->Guess(ct_->Hash(ClientConn(44002).original)), ConntrackShard::kNoGuess);

  for (const uint32_t guess : {guess_a, guess_a_reply, id_b << 1, ConntrackShard::kNoGuess}) {
    const ConntrackShard::Hit hit = lookup(a.original, guess);
    ASSERT_TRUE(hit.found()) << "guess " << guess;
    EXPECT_EQ(hit.flow, id_a);
    EXPECT_EQ(hit.dir, CtDir::kOriginal);
  }
  const ConntrackShard::Hit back = lookup(a.reply, guess_a);
  ASSERT_TRUE(back.found());
  EXPECT_EQ(back.dir, CtDir::kReply);

  // Flow a goes: its guess finds nothing, though its record still holds the key.
  ct_->Remove(id_a);
  EXPECT_FALSE(lookup(a.original, guess_a).found());
  // Its record is reused by flow c: a's old guess names c, and finds c only for c's key.
  const Conn c = ClientConn(44003);
  ASSERT_EQ(Create(c, kSyn, 0), id_a);
  EXPECT_FALSE(lookup(a.original, guess_a).found());
  const ConntrackShard::Hit hit_c = lookup(c.original, guess_a);
  ASSERT_TRUE(hit_c.found());
  EXPECT_EQ(hit_c.flow, id_a);
  // An expired flow found from its guess goes, as from the index.
  const ConntrackShard::Hit late =
      ct_->Lookup(b.original, ct_->Hash(b.original), 60 * kSec, id_b << 1);
  EXPECT_FALSE(late.found());
  EXPECT_FALSE(Lookup(b.original, 0).found()) << "removed, not only skipped";
  EXPECT_EQ(ct_->stats().expired, 1u);
}

TEST_F(ConntrackTest, TranslatedRewritesANattedFlow) {
  const Conn c = ClientConn(44000);
  const uint32_t id = Create(c, kSyn, 0);
  const Flow& f = ct_->flow(id);

  // Client -> VIP:80 leaves as client -> backend:8080.
  EXPECT_TRUE(f.translated);
  const FlowKey to_backend = f.Translated(CtDir::kOriginal);
  EXPECT_EQ(to_backend.src, c.original.src);
  EXPECT_EQ(to_backend.src_port, 44000);
  EXPECT_EQ(to_backend.dst, kBackend);
  EXPECT_EQ(to_backend.dst_port, 8080);
  EXPECT_EQ(to_backend.proto, IpProto::kTcp);

  // Backend:8080 -> client leaves as VIP:80 -> client.
  const FlowKey to_client = f.Translated(CtDir::kReply);
  EXPECT_EQ(to_client.src, kVip);
  EXPECT_EQ(to_client.src_port, 80);
  EXPECT_EQ(to_client.dst, c.original.src);
  EXPECT_EQ(to_client.dst_port, 44000);

  // Without NAT the reply is the reverse of the original and nothing changes.
  const FlowKey direct = ClientConn(44001).original;
  const uint32_t plain = ct_->Insert(direct, ct_->Hash(direct), direct.Reversed(), kAck, 0);
  EXPECT_FALSE(ct_->flow(plain).translated);
  EXPECT_EQ(ct_->flow(plain).Translated(CtDir::kOriginal), direct);
  EXPECT_EQ(ct_->flow(plain).Translated(CtDir::kReply), direct.Reversed());
}

TEST_F(ConntrackTest, ExpiredFlowIsNotFoundAndCounted) {
  const Conn c = ClientConn(53, IpProto::kUdp);
  Create(c, 0, 0);
  EXPECT_TRUE(Lookup(c.reply, 7 * kSec - 1).found());
  EXPECT_EQ(ct_->stats().expired, 0u);

  EXPECT_FALSE(Lookup(c.original, 7 * kSec).found());
  EXPECT_EQ(ct_->stats().expired, 1u);
  EXPECT_EQ(ct_->size(), 0u);
  // It is gone from both directions, and counted once.
  EXPECT_FALSE(Lookup(c.reply, 7 * kSec).found());
  EXPECT_EQ(ct_->stats().expired, 1u);
}

// The removal hook sees every flow that goes, whichever way it goes, with
// its tuples still in place, and only once.
TEST(ConntrackRemoveHookTest, SeesEveryFlowThatGoes) {
  std::unique_ptr<ConntrackShard> ct = NewShard(TestConfig(2));
  std::vector<FlowKey> gone;
  ct->OnRemove(
      [](void* context, const Flow& f) {
        static_cast<std::vector<FlowKey>*>(context)->push_back(f.tuple[1]);
      },
      &gone);
  const Conn a = ClientConn(1000, IpProto::kUdp);  // expires at 7 s
  const Conn b = ClientConn(1001, IpProto::kUdp);
  const Conn c = ClientConn(1002, IpProto::kUdp);
  const uint32_t id_a = ct->Insert(a.original, ct->Hash(a.original), a.reply, 0, 0);
  ct->Insert(b.original, ct->Hash(b.original), b.reply, 0, 0);
  ct->Remove(id_a);
  ct->Remove(id_a);  // already gone: not seen twice
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0], a.reply) << "removed";

  ct->Insert(c.original, ct->Hash(c.original), c.reply, 0, 0);
  EXPECT_FALSE(ct->Lookup(b.reply, ct->Hash(b.reply), 8 * kSec).found());
  ASSERT_EQ(gone.size(), 2u);
  EXPECT_EQ(gone[1], b.reply) << "expired at lookup";

  ct->Insert(a.original, ct->Hash(a.original), a.reply, 0, 1 * kSec);
  // Full: c, the closest to expiry, is evicted.
  ct->Insert(b.original, ct->Hash(b.original), b.reply, 0, 2 * kSec);
  ASSERT_EQ(gone.size(), 3u);
  EXPECT_EQ(gone[2], c.reply) << "evicted";

  EXPECT_EQ(ct->ExpireSome(100 * kSec, 2), 2u);
  ASSERT_EQ(gone.size(), 5u) << "expired by the sweep";
}

TEST(ConntrackExpireTest, ExpireSomeWorksInSlicesAndResumes) {
  std::unique_ptr<ConntrackShard> ct = NewShard(TestConfig(16));
  std::vector<Conn> old_flows;
  for (uint16_t i = 0; i < 10; ++i) {
    old_flows.push_back(ClientConn(1000 + i, IpProto::kUdp));
    ct->Insert(old_flows.back().original, ct->Hash(old_flows.back().original),
               old_flows.back().reply, 0, 0);  // expires at 7 s
  }
  const Conn young1 = ClientConn(2000, IpProto::kUdp);
  const Conn young2 = ClientConn(2001, IpProto::kUdp);
  // These expire at 12 s.
  ct->Insert(young1.original, ct->Hash(young1.original), young1.reply, 0, 5 * kSec);
  ct->Insert(young2.original, ct->Hash(young2.original), young2.reply, 0, 5 * kSec);
  ASSERT_EQ(ct->size(), 12u);

  // Nothing has expired yet.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(ct->ExpireSome(6 * kSec, 4), 0u);
  EXPECT_EQ(ct->size(), 12u);

  // A budget of 4 over 16 records: four calls sweep the whole shard once.
  uint32_t removed = 0;
  for (int i = 0; i < 4; ++i) {
    const uint32_t n = ct->ExpireSome(8 * kSec, 4);
    EXPECT_LE(n, 4u);
    removed += n;
    EXPECT_EQ(ct->size(), 12u - removed);
  }
  EXPECT_EQ(removed, 10u);
  EXPECT_EQ(ct->stats().expired, 10u);
  EXPECT_EQ(ct->ExpireSome(8 * kSec, 100), 0u);

  for (const Conn& c : old_flows) {
    EXPECT_FALSE(ct->Lookup(c.original, ct->Hash(c.original), 8 * kSec).found());
  }
  EXPECT_TRUE(ct->Lookup(young1.reply, ct->Hash(young1.reply), 8 * kSec).found());
  EXPECT_TRUE(ct->Lookup(young2.original, ct->Hash(young2.original), 8 * kSec).found());
  EXPECT_EQ(ct->stats().expired, 10u);
}

TEST(ConntrackRemoveSomeTest, RemovesTheDoomedInSlicesOfAWalk) {
  std::unique_ptr<ConntrackShard> ct = NewShard(TestConfig(16));
  std::vector<Conn> flows;
  for (uint16_t i = 0; i < 12; ++i) {
    Conn c = ClientConn(3000 + i, IpProto::kUdp);
    if (i % 3 == 0) {  // a second client, whose flows are the doomed ones
      c.original.src = c.reply.dst = IpAddr::V4(0xc6130102);
    }
    ASSERT_NE(ct->Insert(c.original, ct->Hash(c.original), c.reply, 0, 0), ConntrackShard::kNoFlow);
    flows.push_back(c);
  }
  const IpAddr leaving = IpAddr::V4(0xc6130102);
  const auto doomed = [&](const Flow& f) { return f.tuple[0].src == leaving; };
  // The flows took records 0 to 11. A budget of 4: the first two calls see
  // records 0 to 7, with the doomed flows 0, 3 and 6; the next goes on from 8.
  ct->RemoveSome(doomed, 4);
  ct->RemoveSome(doomed, 4);
  EXPECT_EQ(ct->size(), 9u);
  ct->RemoveSome(doomed, 4);
  EXPECT_EQ(ct->size(), 8u);
  for (uint16_t i = 0; i < flows.size(); ++i) {
    const Conn& c = flows[i];
    EXPECT_EQ(ct->Lookup(c.reply, ct->Hash(c.reply), kSec).found(), i % 3 != 0) << i;
  }
  EXPECT_EQ(ct->stats().expired, 0u) << "removed, not expired";
}

class ConntrackFullTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kCapacity = 8;

  // A TCP flow picked up mid-stream that its peer answered: established both ways.
  uint32_t Established(uint16_t port, uint64_t now) {
    const uint32_t id = Create(port, IpProto::kTcp, kAck, now);
    if (id != ConntrackShard::kNoFlow) ct_->Update(id, CtDir::kReply, kAck, now);
    return id;
  }
  uint32_t Create(uint16_t port, IpProto proto, uint8_t flags, uint64_t now) {
    const Conn c = ClientConn(port, proto);
    return ct_->Insert(c.original, ct_->Hash(c.original), c.reply, flags, now);
  }
  bool Found(uint16_t port, IpProto proto, uint64_t now) {
    const Conn c = ClientConn(port, proto);
    return ct_->Lookup(c.reply, ct_->Hash(c.reply), now).found();
  }

  std::unique_ptr<ConntrackShard> ct_ = NewShard(TestConfig(kCapacity));
};

TEST_F(ConntrackFullTest, RemoveFreesCapacity) {
  std::vector<uint32_t> ids;
  for (uint16_t p = 0; p < kCapacity; ++p) ids.push_back(Established(p, 0));
  EXPECT_EQ(ct_->size(), kCapacity);
  EXPECT_EQ(Create(100, IpProto::kTcp, kAck, 0), ConntrackShard::kNoFlow);

  ct_->Remove(ids[3]);
  EXPECT_EQ(ct_->size(), kCapacity - 1);
  EXPECT_FALSE(Found(3, IpProto::kTcp, 0));
  // Removing it again changes nothing.
  ct_->Remove(ids[3]);
  EXPECT_EQ(ct_->size(), kCapacity - 1);

  EXPECT_NE(Create(100, IpProto::kTcp, kAck, 0), ConntrackShard::kNoFlow);
  EXPECT_TRUE(Found(100, IpProto::kTcp, 0));
  EXPECT_EQ(ct_->size(), kCapacity);
  EXPECT_EQ(ct_->stats().full, 1u);
}

TEST_F(ConntrackFullTest, FullOfEstablishedFlowsRefusesNewOnes) {
  for (uint16_t p = 0; p < kCapacity; ++p) {
    ASSERT_NE(Established(p, 0), ConntrackShard::kNoFlow);
  }
  for (uint64_t i = 1; i <= 3; ++i) {
    EXPECT_EQ(Create(100 + i, IpProto::kTcp, kSyn, kSec), ConntrackShard::kNoFlow);
    EXPECT_EQ(ct_->stats().full, i);
  }
  EXPECT_EQ(ct_->stats().evicted, 0u);
  EXPECT_EQ(ct_->size(), kCapacity);
  for (uint16_t p = 0; p < kCapacity; ++p) EXPECT_TRUE(Found(p, IpProto::kTcp, kSec)) << p;
}

TEST_F(ConntrackFullTest, EvictsEmbryonicFlowsButNeverEstablishedOnes) {
  // 5 established (TCP picked up mid-stream, a UDP flow that got its reply) ...
  for (uint16_t p = 0; p < 4; ++p) Established(p, 0);
  const uint32_t dns = Create(4, IpProto::kUdp, 0, 0);
  ct_->Update(dns, CtDir::kReply, 0, 0);
  // ... and 3 embryonic.
  Create(5, IpProto::kTcp, kSyn, 0);     // expires at 5 s
  Create(6, IpProto::kUdp, 0, kSec);     // expires at 8 s
  Create(7, IpProto::kTcp, kSyn, kSec);  // expires at 6 s
  ASSERT_EQ(ct_->size(), kCapacity);

  // New established flows take the embryonic ones' places, closest to expiry first.
  const uint64_t now = 2 * kSec;
  ASSERT_NE(Established(100, now), ConntrackShard::kNoFlow);
  EXPECT_FALSE(Found(5, IpProto::kTcp, now));
  EXPECT_TRUE(Found(6, IpProto::kUdp, now));
  ASSERT_NE(Established(101, now), ConntrackShard::kNoFlow);
  EXPECT_FALSE(Found(7, IpProto::kTcp, now));
  ASSERT_NE(Established(102, now), ConntrackShard::kNoFlow);
  EXPECT_FALSE(Found(6, IpProto::kUdp, now));
  EXPECT_EQ(ct_->stats().evicted, 3u);
  EXPECT_EQ(ct_->stats().full, 0u);

  // Now only established flows are left.
  EXPECT_EQ(Create(103, IpProto::kTcp, kSyn, now), ConntrackShard::kNoFlow);
  EXPECT_EQ(ct_->stats().full, 1u);
  for (uint16_t p : {0, 1, 2, 3, 100, 101, 102}) EXPECT_TRUE(Found(p, IpProto::kTcp, now)) << p;
  EXPECT_TRUE(Found(4, IpProto::kUdp, now));
  EXPECT_EQ(ct_->stats().expired, 0u);
}

TEST_F(ConntrackFullTest, ReusesExpiredFlowsBeforeEvicting) {
  for (uint16_t p = 0; p < 6; ++p) Established(p, 0);  // expire at 100 s
  Create(6, IpProto::kTcp, kSyn, 8 * kSec);            // embryonic, expires at 13 s
  Create(7, IpProto::kUdp, 0, 0);                      // expires at 7 s
  ASSERT_EQ(ct_->size(), kCapacity);

  const uint64_t now = 10 * kSec;
  ASSERT_NE(Create(100, IpProto::kUdp, 0, now), ConntrackShard::kNoFlow);
  EXPECT_EQ(ct_->stats().expired, 1u);
  EXPECT_EQ(ct_->stats().evicted, 0u);
  EXPECT_TRUE(Found(6, IpProto::kTcp, now));
  EXPECT_FALSE(Found(7, IpProto::kUdp, now));
  EXPECT_EQ(ct_->size(), kCapacity);

  // Established flows that have run out are reused like any other.
  const uint64_t later = 100 * kSec;
  for (uint16_t p = 200; p < 206; ++p) {
    ASSERT_NE(Established(p, later), ConntrackShard::kNoFlow);
  }
  EXPECT_EQ(ct_->stats().expired, 7u);
  EXPECT_EQ(ct_->stats().full, 0u);
}

// Flows come and go in random order while the clock runs, as a worker would
// drive the shard (look up first, create on a miss). A model of what should
// be there checks every answer.
TEST(ConntrackChurnTest, MatchesAModel) {
  constexpr uint32_t kCapacity = 64;
  constexpr uint16_t kClients = 200;
  ConntrackConfig config = TestConfig(kCapacity);
  config.eviction_scan = kCapacity;  // the window covers the whole shard
  std::unique_ptr<ConntrackShard> ct = NewShard(config);
  ASSERT_NE(ct, nullptr);

  struct Model {
    uint16_t client;
    uint64_t expires_ns;
    bool embryonic;  // evictable: no answer seen yet
    bool syn;        // a TCP flow begun with SYN (this model sends it nothing more)
  };
  std::map<uint32_t, Model> live;  // by flow id
  ConntrackStats want;
  std::mt19937 rng(12345);
  uint64_t now = 0;

  auto conn = [](uint16_t client) {
    return ClientConn(10000 + client, client % 3 == 0 ? IpProto::kUdp : IpProto::kTcp);
  };
  auto find_client = [&](uint16_t client) {
    return std::find_if(live.begin(), live.end(),
                        [&](const auto& e) { return e.second.client == client; });
  };
  // Looks `client` up in one direction; drops it from the model when it has
  // expired, as the shard does.
  auto check_lookup = [&](uint16_t client, CtDir dir) {
    const Conn c = conn(client);
    const FlowKey& key = dir == CtDir::kOriginal ? c.original : c.reply;
    const ConntrackShard::Hit hit = ct->Lookup(key, ct->Hash(key), now);
    auto it = find_client(client);
    if (it != live.end() && it->second.expires_ns <= now) {
      live.erase(it);
      ++want.expired;
      it = live.end();
    }
    if (it == live.end()) {
      EXPECT_FALSE(hit.found()) << "client " << client;
    } else {
      EXPECT_TRUE(hit.found()) << "client " << client;
      EXPECT_EQ(hit.flow, it->first);
      EXPECT_EQ(hit.dir, dir);
    }
    return hit;
  };

  for (int op = 0; op < 50000; ++op) {
    now += (rng() % 4) * kSec / 80;
    const uint16_t client = static_cast<uint16_t>(rng() % kClients);
    const CtDir dir = rng() % 2 ? CtDir::kOriginal : CtDir::kReply;
    const uint32_t action = rng() % 10;
    if (action < 5) {
      // A packet: update a known flow, or create one for a client's first packet.
      const ConntrackShard::Hit hit = check_lookup(client, dir);
      const bool udp = client % 3 == 0;
      if (hit.found()) {
        Model& m = live.at(hit.flow);
        // A packet that leaves the state alone moves the expiry only once it
        // would move by a second or more (the shard keeps its lines clean).
        auto refresh = [&](uint64_t expires) {
          if (expires >= m.expires_ns + kSec) m.expires_ns = expires;
        };
        if (udp && dir == CtDir::kReply) {
          ct->Update(hit.flow, dir, 0, now);
          if (m.embryonic) {
            m.expires_ns = now + 30 * kSec;
          } else {
            refresh(now + 30 * kSec);
          }
          m.embryonic = false;
        } else if (udp) {
          ct->Update(hit.flow, dir, 0, now);
          refresh(now + (m.embryonic ? 7 : 30) * kSec);
        } else if (!m.syn) {
          // TCP picked up mid-stream: evictable, with the handshake timeout,
          // until the peer answers; then established both ways.
          ct->Update(hit.flow, dir, kAck, now);
          if (m.embryonic && dir == CtDir::kReply) {
            m.embryonic = false;
            m.expires_ns = now + 100 * kSec;
          } else {
            refresh(now + (m.embryonic ? 5 : 100) * kSec);
          }
        }
        continue;
      }
      if (dir == CtDir::kReply) continue;  // a stray reply creates nothing
      const bool syn = !udp && rng() % 2 == 0;
      const Conn c = conn(client);
      const bool full = live.size() == kCapacity;
      const uint32_t id =
          ct->Insert(c.original, ct->Hash(c.original), c.reply, udp ? 0 : (syn ? kSyn : kAck), now);
      if (id == ConntrackShard::kNoFlow) {
        ++want.full;
        // Refused only when full of live, established flows.
        EXPECT_TRUE(full);
        for (const auto& [fid, m] : live) {
          EXPECT_FALSE(m.embryonic) << "flow " << fid;
          EXPECT_GT(m.expires_ns, now) << "flow " << fid;
        }
        continue;
      }
      if (full) {
        // The new flow took a victim's place: an expired one if there was any,
        // else the embryonic one closest to expiry.
        const auto victim = live.find(id);
        ASSERT_NE(victim, live.end());
        const bool any_expired = std::any_of(
            live.begin(), live.end(), [&](const auto& e) { return e.second.expires_ns <= now; });
        if (any_expired) {
          EXPECT_LE(victim->second.expires_ns, now);
          ++want.expired;
        } else {
          EXPECT_TRUE(victim->second.embryonic);
          for (const auto& [fid, m] : live) {
            if (m.embryonic) {
              EXPECT_LE(victim->second.expires_ns, m.expires_ns);
            }
          }
          ++want.evicted;
        }
        live.erase(victim);
      } else {
        ASSERT_EQ(live.count(id), 0u);
      }
      ++want.created;
      live[id] = Model{client, now + (udp ? 7 : 5) * kSec, /*embryonic=*/true, syn};
    } else if (action < 7) {
      // The control plane removes a flow.
      const auto it = find_client(client);
      if (it != live.end()) {
        ct->Remove(it->first);
        live.erase(it);
      }
    } else if (action < 9) {
      check_lookup(client, dir);
    } else {
      const uint32_t removed = ct->ExpireSome(now, 8);
      uint32_t gone = 0;
      for (auto it = live.begin(); it != live.end();) {
        if (ct->flow(it->first).in_use) {
          ++it;
          continue;
        }
        EXPECT_LE(it->second.expires_ns, now);
        it = live.erase(it);
        ++gone;
      }
      EXPECT_EQ(removed, gone);
      want.expired += gone;
    }
    ASSERT_EQ(ct->size(), live.size()) << "op " << op;
    if (op % 1000 == 0) {
      for (uint16_t client = 0; client < kClients; ++client) {
        check_lookup(client, CtDir::kOriginal);
        check_lookup(client, CtDir::kReply);
      }
    }
    if (testing::Test::HasFailure()) FAIL() << "op " << op;
  }

  EXPECT_EQ(ct->stats().created, want.created);
  EXPECT_EQ(ct->stats().expired, want.expired);
  EXPECT_EQ(ct->stats().evicted, want.evicted);
  EXPECT_EQ(ct->stats().full, want.full);
  // The run exercised expiry and eviction. Refusals need a shard full of
  // flows answered both ways, which this churn of new clients rarely leaves;
  // ConntrackFullTest covers them.
  EXPECT_GT(want.expired, 100u);
  EXPECT_GT(want.evicted, 100u);
  std::printf(
      "churn: %llu created, %llu expired, %llu evicted, %llu refused\n",
      static_cast<unsigned long long>(want.created), static_cast<unsigned long long>(want.expired),
      static_cast<unsigned long long>(want.evicted), static_cast<unsigned long long>(want.full));
}

}  // namespace
}  // namespace atl::lb
