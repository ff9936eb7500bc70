/* dataplane_gen: blast enhanced GRE (version 1) packets out of one interface.
 *
 * AF_PACKET raw socket (qdisc bypass), sendmmsg in batches, for a fixed time.
 * Each packet: Ethernet / IPv4 (proto 47) / enhanced GRE with key and sequence
 * number / PPP frame (ff 03 00 21 + filler) of --size bytes. The sequence number
 * goes up per packet. Prints one JSON line: sent, send_errors, elapsed, pps.
 *
 * usage: dataplane_gen IFNAME SRC_MAC DST_MAC SRC_IP DST_IP CALL_ID SIZE SECONDS [RATE]
 * RATE: packets per second to offer (0 or absent: as fast as possible).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_FRAME 2048

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_mac(const char *text, uint8_t *mac) {
    unsigned v[6];
    if (sscanf(text, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
        return -1;
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)v[i];
    return 0;
}

static uint16_t ip_checksum(const uint8_t *header, size_t len) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(header[i] << 8 | header[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

int main(int argc, char **argv) {
    if (argc < 9) {
        fprintf(stderr, "usage: %s IFNAME SRC_MAC DST_MAC SRC_IP DST_IP CALL_ID SIZE SECONDS"
                        " [RATE]\n", argv[0]);
        return 2;
    }
    uint8_t src_mac[6], dst_mac[6];
    struct in_addr src_ip, dst_ip;
    if (parse_mac(argv[2], src_mac) || parse_mac(argv[3], dst_mac) ||
        !inet_aton(argv[4], &src_ip) || !inet_aton(argv[5], &dst_ip)) {
        fprintf(stderr, "bad address\n");
        return 2;
    }
    unsigned call_id = (unsigned)strtoul(argv[6], NULL, 0);
    int size = atoi(argv[7]);
    double seconds = atof(argv[8]);
    double rate = argc > 9 ? atof(argv[9]) : 0;
    const int gre_len = 12; /* flags/version, protocol, payload length, call ID, sequence */
    int frame_len = 14 + 20 + gre_len + size;
    if (size < 4 || frame_len > MAX_FRAME || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "bad size or duration\n");
        return 2;
    }

    int fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: send only, receive nothing */
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    int one = 1;
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(argv[1])};
    if (!ll.sll_ifindex || bind(fd, (struct sockaddr *)&ll, sizeof ll) < 0) {
        perror("bind");
        return 1;
    }

    static uint8_t frames[BATCH][MAX_FRAME];
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];
    for (int i = 0; i < BATCH; i++) {
        uint8_t *f = frames[i];
        memcpy(f, dst_mac, 6);
        memcpy(f + 6, src_mac, 6);
        f[12] = 0x08, f[13] = 0x00;
        uint8_t *ip = f + 14;
        uint16_t total = (uint16_t)(20 + gre_len + size);
        ip[0] = 0x45, ip[1] = 0;
        ip[2] = total >> 8, ip[3] = total & 0xff;
        ip[4] = 0, ip[5] = 0, ip[6] = 0x40, ip[7] = 0; /* DF */
        ip[8] = 64, ip[9] = 47;
        ip[10] = ip[11] = 0;
        memcpy(ip + 12, &src_ip, 4);
        memcpy(ip + 16, &dst_ip, 4);
        uint16_t csum = ip_checksum(ip, 20);
        ip[10] = csum >> 8, ip[11] = csum & 0xff;
        uint8_t *gre = ip + 20;
        gre[0] = 0x30, gre[1] = 0x01; /* K and S bits, no ack, version 1 */
        gre[2] = 0x88, gre[3] = 0x0b; /* PPP */
        gre[4] = (uint8_t)(size >> 8), gre[5] = (uint8_t)size;
        gre[6] = (uint8_t)(call_id >> 8), gre[7] = (uint8_t)call_id;
        uint8_t *ppp = gre + gre_len;
        ppp[0] = 0xff, ppp[1] = 0x03, ppp[2] = 0x00, ppp[3] = 0x21;
        for (int j = 4; j < size; j++)
            ppp[j] = (uint8_t)j;
        iov[i].iov_base = f;
        iov[i].iov_len = (size_t)frame_len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    uint64_t sent = 0, errors = 0, batches = 0;
    uint32_t seq = 0;
    double start = now(), deadline = start + seconds, t = start;
    while (t < deadline) {
        for (int i = 0; i < BATCH; i++) {
            uint8_t *s = frames[i] + 14 + 20 + 8;
            uint32_t n = seq + (uint32_t)i;
            s[0] = n >> 24, s[1] = (n >> 16) & 0xff, s[2] = (n >> 8) & 0xff, s[3] = n & 0xff;
        }
        int done = 0;
        int tries = 0;
        while (done < BATCH && tries++ < 4 * BATCH) {
            int r = sendmmsg(fd, msgs + done, (unsigned)(BATCH - done), 0);
            if (r < 0) {
                if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                    perror("sendmmsg");
                    return 1;
                }
                errors++;
                done++; /* this packet was dropped on the way out: skip it */
            } else {
                sent += (uint64_t)r;
                done += r;
            }
        }
        seq += BATCH;
        batches++;
        t = now();
        if (rate > 0) {
            double due = start + (double)(batches * BATCH) / rate;
            if (due > t) {
                double wait = due - t;
                struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
                nanosleep(&ts, NULL);
                t = now();
            }
        }
    }
    double elapsed = now() - start;
    printf("{\"sent\": %llu, \"send_errors\": %llu, \"elapsed\": %.6f, \"pps\": %.1f}\n",
           (unsigned long long)sent, (unsigned long long)errors, elapsed, sent / elapsed);
    close(fd);
    return 0;
}
