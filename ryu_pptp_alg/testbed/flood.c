/*
 * flood: a bounded load generator for the overload tests (issue 13). Test bed only.
 *
 * Sends Ethernet frames out of one interface through an AF_PACKET socket (qdisc
 * bypass) with sendmmsg, at a given rate for a given time, then stops by itself
 * (or at SIGTERM / SIGINT) and prints one JSON summary line. Three kinds:
 *
 *   syn  TCP SYN (with an MSS option) to DST:DPORT from random source ports, random
 *        sequence numbers and IP ids; IPv4 and TCP checksums computed per packet.
 *   gre  enhanced GRE (version 1, key and sequence number present) to DST with a
 *        random call ID and sequence number, carrying a short PPP LCP frame.
 *   arp  ARP with a random sender MAC (locally administered) for target DST: requests
 *        (broadcast), replies (to DST_MAC, target MAC DST_MAC) or both alternately.
 *
 * The source IPv4 address is --src, or with --spoof A.B.C.D/N a random host of that
 * prefix per packet (network and broadcast host parts are never drawn when N <= 30).
 * The Ethernet source is --src-mac (--random-mac: the ARP sender MAC, arp only).
 *
 * Bounds: --rate 1..2000000 packets/s (there is no unlimited mode), --seconds up to
 * 600. With --progress S a JSON line {"progress": ...} is printed every S seconds.
 *
 * usage: flood --mode syn|gre|arp --ifname IF --src-mac MAC --dst-mac MAC --dst IP
 *              [--src IP | --spoof CIDR] [--dport 1723] [--arp-op request|reply|mixed]
 *              [--random-mac] --rate PPS --seconds S [--batch 64] [--seed N]
 *              [--progress S]
 *
 * Built at run time by ryu_pptp_alg.testbed.flood.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define FRAME_MAX 128
#define MAX_RATE 2000000.0
#define MAX_SECONDS 600.0

enum mode { MODE_SYN, MODE_GRE, MODE_ARP };
enum arp_op { ARP_REQUEST_ONLY, ARP_REPLY_ONLY, ARP_MIXED };

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state;

static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int parse_mac(const char *text, uint8_t *mac) {
    unsigned v[6];
    char extra;
    if (sscanf(text, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &extra) != 6)
        return -1;
    for (int i = 0; i < 6; i++) {
        if (v[i] > 255)
            return -1;
        mac[i] = (uint8_t)v[i];
    }
    return 0;
}

static int parse_prefix(const char *text, uint32_t *base, uint32_t *mask, int *len) {
    char buf[64];
    const char *slash = strchr(text, '/');
    if (!slash || (size_t)(slash - text) >= sizeof buf)
        return -1;
    memcpy(buf, text, (size_t)(slash - text));
    buf[slash - text] = 0;
    struct in_addr addr;
    char *end;
    long n = strtol(slash + 1, &end, 10);
    if (!inet_aton(buf, &addr) || *end || n < 1 || n > 32)
        return -1;
    *len = (int)n;
    *mask = n == 32 ? 0xffffffffu : ~(0xffffffffu >> n);
    *base = ntohl(addr.s_addr) & *mask;
    return 0;
}

static uint32_t fold(uint32_t sum) {
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}

static uint32_t sum16(const uint8_t *data, size_t len, uint32_t sum) {
    size_t i = 0;
    for (; i + 1 < len; i += 2)
        sum += (uint32_t)(data[i] << 8 | data[i + 1]);
    if (i < len)
        sum += (uint32_t)(data[i] << 8);
    return sum;
}

static void put16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

struct config {
    enum mode mode;
    enum arp_op arp_op;
    uint8_t src_mac[6], dst_mac[6];
    uint32_t src, dst; /* host order */
    int spoof;
    uint32_t spoof_base, spoof_mask;
    int spoof_len;
    int random_mac;
    unsigned dport;
};

static uint32_t source_address(const struct config *c) {
    if (!c->spoof)
        return c->src;
    uint32_t host_bits = ~c->spoof_mask;
    for (;;) {
        uint32_t host = (uint32_t)rnd() & host_bits;
        if (c->spoof_len > 30 || (host != 0 && host != host_bits))
            return c->spoof_base | host;
    }
}

static void ipv4_header(uint8_t *ip, uint32_t total, uint8_t proto, uint32_t src,
                        uint32_t dst) {
    ip[0] = 0x45, ip[1] = 0;
    put16(ip + 2, total);
    put16(ip + 4, (uint32_t)rnd() & 0xffff); /* id */
    ip[6] = 0x40, ip[7] = 0;                 /* DF */
    ip[8] = 64, ip[9] = proto;
    ip[10] = ip[11] = 0;
    put32(ip + 12, src);
    put32(ip + 16, dst);
    put16(ip + 10, ~fold(sum16(ip, 20, 0)) & 0xffff);
}

/* One frame into f; returns its length. */
static size_t build(const struct config *c, uint8_t *f, uint64_t n) {
    memcpy(f, c->dst_mac, 6);
    memcpy(f + 6, c->src_mac, 6);
    if (c->mode == MODE_ARP) {
        int reply = c->arp_op == ARP_REPLY_ONLY || (c->arp_op == ARP_MIXED && (n & 1));
        uint8_t sha[6];
        uint64_t r = rnd();
        for (int i = 0; i < 6; i++)
            sha[i] = (uint8_t)(r >> (8 * i));
        sha[0] = (uint8_t)((sha[0] & 0xfe) | 0x02); /* unicast, locally administered */
        if (!reply)
            memset(f, 0xff, 6);
        if (c->random_mac)
            memcpy(f + 6, sha, 6);
        put16(f + 12, 0x0806);
        uint8_t *a = f + 14;
        put16(a, 1);          /* Ethernet */
        put16(a + 2, 0x0800); /* IPv4 */
        a[4] = 6, a[5] = 4;
        put16(a + 6, reply ? 2 : 1);
        memcpy(a + 8, sha, 6);
        put32(a + 14, source_address(c));
        if (reply)
            memcpy(a + 18, c->dst_mac, 6);
        else
            memset(a + 18, 0, 6);
        put32(a + 24, c->dst);
        memset(a + 28, 0, 18); /* pad to the 60-byte minimum */
        return 60;
    }
    put16(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    uint32_t src = source_address(c);
    if (c->mode == MODE_SYN) {
        const uint32_t tcp_len = 24; /* header with one MSS option */
        uint8_t *tcp = ip + 20;
        ipv4_header(ip, 20 + tcp_len, 6, src, c->dst);
        put16(tcp, 1024 + (uint32_t)(rnd() % (65536 - 1024)));
        put16(tcp + 2, c->dport);
        put32(tcp + 4, (uint32_t)rnd()); /* sequence number */
        put32(tcp + 8, 0);               /* acknowledgement */
        tcp[12] = (uint8_t)((tcp_len / 4) << 4);
        tcp[13] = 0x02; /* SYN */
        put16(tcp + 14, 64240);
        tcp[16] = tcp[17] = 0; /* checksum */
        tcp[18] = tcp[19] = 0; /* urgent pointer */
        tcp[20] = 2, tcp[21] = 4;
        put16(tcp + 22, 1460);
        uint32_t sum = sum16(ip + 12, 8, 0) + 6 + tcp_len; /* pseudo-header */
        put16(tcp + 16, ~fold(sum16(tcp, tcp_len, sum)) & 0xffff);
        return 14 + 20 + tcp_len;
    }
    /* GRE: flags K and S, version 1; protocol PPP; payload length; call ID; sequence */
    static const uint8_t ppp[] = {0xff, 0x03, 0xc0, 0x21, 0x09, 0x01, 0x00, 0x08,
                                  0x00, 0x00, 0x00, 0x00};
    const uint32_t gre_len = 12 + sizeof ppp;
    ipv4_header(ip, 20 + gre_len, 47, src, c->dst);
    uint8_t *gre = ip + 20;
    gre[0] = 0x30, gre[1] = 0x01;
    put16(gre + 2, 0x880b);
    put16(gre + 4, sizeof ppp);
    put16(gre + 6, (uint32_t)rnd() & 0xffff);
    put32(gre + 8, (uint32_t)rnd());
    memcpy(gre + 12, ppp, sizeof ppp);
    return 14 + 20 + gre_len;
}

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s --mode syn|gre|arp --ifname IF --src-mac MAC --dst-mac MAC --dst IP\n"
            "       [--src IP | --spoof CIDR] [--dport 1723] [--arp-op request|reply|mixed]\n"
            "       [--random-mac] --rate PPS --seconds S [--batch 64] [--seed N]"
            " [--progress S]\n",
            prog);
}

int main(int argc, char **argv) {
    struct config c = {.mode = MODE_SYN, .arp_op = ARP_MIXED, .dport = 1723};
    const char *ifname = NULL, *mode = NULL;
    int have_src_mac = 0, have_dst_mac = 0, have_dst = 0, have_src = 0;
    double rate = 0, seconds = 0, progress = 0;
    int batch = 64;
    uint64_t seed = 0;
    static const struct option options[] = {
        {"mode", required_argument, 0, 'm'},    {"ifname", required_argument, 0, 'i'},
        {"src-mac", required_argument, 0, 'S'}, {"dst-mac", required_argument, 0, 'D'},
        {"src", required_argument, 0, 's'},     {"dst", required_argument, 0, 'd'},
        {"spoof", required_argument, 0, 'p'},   {"dport", required_argument, 0, 'P'},
        {"arp-op", required_argument, 0, 'a'},  {"random-mac", no_argument, 0, 'R'},
        {"rate", required_argument, 0, 'r'},    {"seconds", required_argument, 0, 't'},
        {"batch", required_argument, 0, 'b'},   {"seed", required_argument, 0, 'e'},
        {"progress", required_argument, 0, 'g'}, {0, 0, 0, 0}};
    struct in_addr addr;
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'm':
            mode = optarg;
            break;
        case 'i':
            ifname = optarg;
            break;
        case 'S':
            if (parse_mac(optarg, c.src_mac))
                goto bad;
            have_src_mac = 1;
            break;
        case 'D':
            if (parse_mac(optarg, c.dst_mac))
                goto bad;
            have_dst_mac = 1;
            break;
        case 's':
            if (!inet_aton(optarg, &addr))
                goto bad;
            c.src = ntohl(addr.s_addr);
            have_src = 1;
            break;
        case 'd':
            if (!inet_aton(optarg, &addr))
                goto bad;
            c.dst = ntohl(addr.s_addr);
            have_dst = 1;
            break;
        case 'p':
            if (parse_prefix(optarg, &c.spoof_base, &c.spoof_mask, &c.spoof_len))
                goto bad;
            c.spoof = 1;
            break;
        case 'P':
            c.dport = (unsigned)strtoul(optarg, NULL, 0);
            if (c.dport == 0 || c.dport > 65535)
                goto bad;
            break;
        case 'a':
            if (!strcmp(optarg, "request"))
                c.arp_op = ARP_REQUEST_ONLY;
            else if (!strcmp(optarg, "reply"))
                c.arp_op = ARP_REPLY_ONLY;
            else if (!strcmp(optarg, "mixed"))
                c.arp_op = ARP_MIXED;
            else
                goto bad;
            break;
        case 'R':
            c.random_mac = 1;
            break;
        case 'r':
            rate = atof(optarg);
            break;
        case 't':
            seconds = atof(optarg);
            break;
        case 'b':
            batch = atoi(optarg);
            break;
        case 'e':
            seed = strtoull(optarg, NULL, 0);
            break;
        case 'g':
            progress = atof(optarg);
            break;
        default:
            goto bad;
        }
    }
    if (!mode || !strcmp(mode, "syn"))
        c.mode = MODE_SYN;
    else if (!strcmp(mode, "gre"))
        c.mode = MODE_GRE;
    else if (!strcmp(mode, "arp"))
        c.mode = MODE_ARP;
    else
        goto bad;
    if (!ifname || !have_src_mac || !have_dst_mac || !have_dst || (!have_src && !c.spoof)) {
        fprintf(stderr, "--ifname, --src-mac, --dst-mac, --dst and --src or --spoof are"
                        " required\n");
        goto bad;
    }
    if (!(rate >= 1 && rate <= MAX_RATE) || !(seconds > 0 && seconds <= MAX_SECONDS) ||
        batch < 1 || batch > MAX_BATCH || progress < 0) {
        fprintf(stderr, "need 1 <= --rate <= %.0f, 0 < --seconds <= %.0f, 1 <= --batch <= %d\n",
                MAX_RATE, MAX_SECONDS, MAX_BATCH);
        goto bad;
    }
    rng_state = seed ? seed : ((uint64_t)getpid() << 32) ^ (uint64_t)(now() * 1e9);

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: send only, receive nothing */
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    int one = 1;
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(ifname)};
    if (!ll.sll_ifindex || bind(fd, (struct sockaddr *)&ll, sizeof ll) < 0) {
        perror("bind");
        return 1;
    }

    static uint8_t frames[MAX_BATCH][FRAME_MAX];
    static struct iovec iov[MAX_BATCH];
    static struct mmsghdr msgs[MAX_BATCH];
    for (int i = 0; i < batch; i++) {
        iov[i].iov_base = frames[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    uint64_t sent = 0, errors = 0, offered = 0;
    double start = now(), deadline = start + seconds, t = start;
    double next_progress = progress > 0 ? start + progress : deadline + 1;
    while (t < deadline && !stop_requested) {
        for (int i = 0; i < batch; i++)
            iov[i].iov_len = build(&c, frames[i], offered + (uint64_t)i);
        int done = 0, tries = 0;
        while (done < batch && tries++ < 4 * batch) {
            int r = sendmmsg(fd, msgs + done, (unsigned)(batch - done), 0);
            if (r < 0) {
                if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                    perror("sendmmsg");
                    return 1;
                }
                if (errno != EINTR) {
                    errors++;
                    done++; /* dropped on the way out: skip it */
                }
            } else {
                sent += (uint64_t)r;
                done += r;
            }
        }
        offered += (uint64_t)batch;
        t = now();
        double due = start + (double)offered / rate;
        if (due > deadline)
            due = deadline;
        if (due > t) {
            double wait = due - t;
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
            t = now();
        }
        if (t >= next_progress) {
            printf("{\"progress\": true, \"t\": %.3f, \"sent\": %llu, \"send_errors\": %llu}\n",
                   t - start, (unsigned long long)sent, (unsigned long long)errors);
            fflush(stdout);
            next_progress += progress;
        }
    }
    double elapsed = now() - start;
    static const char *names[] = {"syn", "gre", "arp"};
    printf("{\"mode\": \"%s\", \"sent\": %llu, \"send_errors\": %llu, \"elapsed\": %.6f, "
           "\"pps\": %.1f, \"rate\": %.1f, \"stopped_by\": \"%s\"}\n",
           names[c.mode], (unsigned long long)sent, (unsigned long long)errors, elapsed,
           elapsed > 0 ? (double)sent / elapsed : 0.0, rate, stop_requested ? "signal" : "time");
    fflush(stdout);
    close(fd);
    return 0;
bad:
    usage(argv[0]);
    return 2;
}
