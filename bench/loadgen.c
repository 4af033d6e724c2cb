/* A native load generator for the orders and G2A merchant benchmarks: the same flows as their
 * aiohttp clients (HTTP/1.1 keep-alive, JSON in and out, one key per order checked), at a
 * fraction of their CPU, so that the server and PostgreSQL get the cores the Python client
 * would take. pgbench's own client is native too.
 *
 * Build: cc -O2 -pthread -o loadgen bench/loadgen.c  (orders_bench.py does this itself)
 * Usage: loadgen orders   PORT[,PORT...] TOKEN OFFER_ID    CLIENTS WARMUP_S SECONDS
 *        loadgen merchant PORT[,PORT...] TOKEN PRODUCT_ID  CLIENTS WARMUP_S SECONDS FIRST_ID
 *   orders:   create -> pay -> fulfill (buyer API);
 *   merchant: reserve -> order (G2A's calls), G2A order ids FIRST_ID + client * 10^6 + n.
 * Client i talks to 127.0.0.1:PORT[i % ports] over one connection. After WARMUP_S it prints
 * "measuring" and, SECONDS later, one JSON line: flows completed in the window, the window,
 * its own CPU seconds in the window, and p50/p99 per call in ms. Any unexpected answer is
 * printed to stderr and ends the run with status 1. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CALLS = 3 };
static const char *NAMES[2][CALLS] = {{"create", "pay", "fulfill"}, {"reserve", "order"}};
static int merchant, ncalls; /* the flow: 0 orders, 1 merchant */

static int ports[16], nports;
static const char *token, *target; /* the offer id, or the G2A product id */
static long long first_g2a_order;
static double measure_from, measure_until;

typedef struct {
    int port;
    double *lat[CALLS];
    size_t n, cap; /* flows recorded (completed in the window), room for */
    long long next_g2a_order;
    char buf[65536];
    size_t have; /* bytes of the current answer read so far */
} client_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "loadgen: %s: %.400s\n", what, detail ? detail : "");
    exit(1);
}

static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect", NULL);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Send one request and read its whole answer into c->buf (NUL-terminated); returns the
 * status code and points *body at the body. */
static int call(client_t *c, int fd, const char *path, const char *json, char **body) {
    char req[1024];
    size_t len = strlen(json);
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     path, token, len, json);
    for (int sent = 0; sent < n;) {
        ssize_t w = write(fd, req + sent, n - sent);
        if (w <= 0) die("write", path);
        sent += w;
    }
    char *end = NULL;
    c->have = 0;
    while (!(end = memmem(c->buf, c->have, "\r\n\r\n", 4))) {
        ssize_t r = read(fd, c->buf + c->have, sizeof c->buf - 1 - c->have);
        if (r <= 0) die("read", path);
        c->have += r;
    }
    c->buf[c->have] = 0;
    int status = atoi(c->buf + 9);
    char *cl = strcasestr(c->buf, "\r\ncontent-length:");
    if (!cl || cl > end) die("no content-length", c->buf);
    size_t want = (end + 4 - c->buf) + strtoul(cl + 17, NULL, 10);
    if (want >= sizeof c->buf) die("answer too long", path);
    while (c->have < want) {
        ssize_t r = read(fd, c->buf + c->have, want - c->have);
        if (r <= 0) die("read", path);
        c->have += r;
    }
    c->buf[c->have] = 0;
    *body = end + 4;
    return status;
}

/* The value of "name" in a JSON object (the first occurrence), after optional blanks. */
static char *field(char *body, const char *name) {
    char *at = strstr(body, name);
    if (!at) return NULL;
    for (at += strlen(name); *at == ' ' || *at == ':'; at++) continue;
    return at;
}

/* Elements of the JSON array at `at` ('['), or -1 if it is not one. */
static int elements(const char *at) {
    if (!at || *at != '[') return -1;
    int depth = 0, count = 0, in_string = 0;
    for (const char *p = at; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_string = 0;
            continue;
        }
        if (depth == 1 && count == 0 && *p != ' ' && *p != ']') count = 1;
        if (*p == '"') in_string = 1;
        else if (*p == '[' || *p == '{') depth++;
        else if ((*p == ']' || *p == '}') && --depth == 0) return count;
        else if (depth == 1 && *p == ',') count++;
    }
    return -1;
}

static void record(client_t *c, const double spent[CALLS]) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 4096;
        for (int k = 0; k < CALLS; k++) c->lat[k] = realloc(c->lat[k], c->cap * sizeof(double));
    }
    for (int k = 0; k < ncalls; k++) c->lat[k][c->n] = spent[k];
    c->n++;
}

/* One buyer order: create -> pay -> fulfill; t[k] is when call k started, t[3] the end. */
static void order_flow(client_t *c, int fd, double t[CALLS + 1]) {
    char json[256], path[256], id[37], *body;
    snprintf(json, sizeof json, "{\"offerId\":\"%s\"}", target);
    t[0] = now();
    if (call(c, fd, "/orders", json, &body) != 201) die("create", c->buf);
    char *at = field(body, "\"id\"");
    if (!at || *at != '"' || strlen(at) < 38) die("create: no id", body);
    memcpy(id, at + 1, 36), id[36] = 0;
    t[1] = now();
    snprintf(path, sizeof path, "/orders/%s/pay", id);
    if (call(c, fd, path, "", &body) != 200) die("pay", c->buf);
    t[2] = now();
    snprintf(path, sizeof path, "/orders/%s/fulfill", id);
    if (call(c, fd, path, "", &body) != 200) die("fulfill", c->buf);
    t[3] = now();
    if (elements(field(body, "\"keys\"")) != 1) die("fulfill: not exactly one key", body);
}

/* One G2A purchase: reserve one key, then order it; t[2] is the end. */
static void merchant_flow(client_t *c, int fd, double t[CALLS + 1]) {
    char json[256], id[40], *body;
    snprintf(json, sizeof json,
             "[{\"product_id\":%s,\"quantity\":1,\"additional_data\":{\"unit_price\":\"1.00\"}}]",
             target);
    t[0] = now();
    if (call(c, fd, "/g2a/merchant/reservation", json, &body) != 200) die("reserve", c->buf);
    char *at = field(body, "\"reservation_id\""), *end = at ? strchr(at + 1, '"') : NULL;
    if (!at || *at != '"' || !end || end - at - 1 > 36) die("reserve: no reservation_id", body);
    memcpy(id, at + 1, end - at - 1), id[end - at - 1] = 0;
    t[1] = now();
    snprintf(json, sizeof json, "{\"reservation_id\":\"%s\",\"g2a_order_id\":%lld}", id,
             c->next_g2a_order++);
    if (call(c, fd, "/g2a/merchant/order", json, &body) != 200) die("order", c->buf);
    t[2] = now();
    if (elements(field(body, "\"inventory\"")) != 1) die("order: not exactly one key", body);
}

static void *run(void *arg) {
    client_t *c = arg;
    int fd = dial(c->port);
    for (;;) {
        double t[CALLS + 1];
        if (now() >= measure_until) break;
        (merchant ? merchant_flow : order_flow)(c, fd, t);
        if (t[ncalls] >= measure_from && t[ncalls] < measure_until) {
            double spent[CALLS];
            for (int k = 0; k < ncalls; k++) spent[k] = (t[k + 1] - t[k]) * 1000;
            record(c, spent);
        }
    }
    close(fd);
    return NULL;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, size_t n, double q) { /* linear, inclusive of the ends */
    if (!n) return 0;
    double pos = (n - 1) * q;
    size_t i = (size_t)pos;
    return i + 1 < n ? v[i] + (v[i + 1] - v[i]) * (pos - i) : v[i];
}

int main(int argc, char **argv) {
    merchant = argc > 1 && strcmp(argv[1], "merchant") == 0;
    ncalls = merchant ? 2 : 3;
    if (argc != (merchant ? 9 : 8) || (!merchant && strcmp(argv[1], "orders") != 0))
        die("usage", "orders|merchant PORT[,PORT...] TOKEN OFFER|PRODUCT CLIENTS WARMUP_S SECONDS"
                     " [FIRST_G2A_ORDER_ID]");
    for (char *p = strtok(argv[2], ","); p && nports < 16; p = strtok(NULL, ","))
        ports[nports++] = atoi(p);
    token = argv[3], target = argv[4];
    int clients = atoi(argv[5]);
    double warmup = atof(argv[6]), seconds = atof(argv[7]);
    first_g2a_order = merchant ? atoll(argv[8]) : 0;
    measure_from = now() + warmup, measure_until = measure_from + seconds;
    client_t *cs = calloc(clients, sizeof *cs);
    pthread_t *threads = calloc(clients, sizeof *threads);
    for (int i = 0; i < clients; i++) {
        cs[i].port = ports[i % nports];
        cs[i].next_g2a_order = first_g2a_order + (long long)i * 1000000;
        pthread_create(&threads[i], NULL, run, &cs[i]);
    }
    struct timespec pause = {.tv_sec = (time_t)warmup, .tv_nsec = (long)((warmup - (time_t)warmup) * 1e9)};
    nanosleep(&pause, NULL);
    double cpu_from = cpu_s();
    printf("measuring\n");
    fflush(stdout);
    for (int i = 0; i < clients; i++) pthread_join(threads[i], NULL);
    double cpu = cpu_s() - cpu_from;
    size_t total = 0;
    for (int i = 0; i < clients; i++) total += cs[i].n;
    printf("{\"flows\": %zu, \"seconds\": %.3f, \"cpu_s\": %.3f", total, seconds, cpu);
    for (int k = 0; k < ncalls; k++) {
        double *all = malloc((total ? total : 1) * sizeof(double));
        size_t n = 0;
        for (int i = 0; i < clients; i++)
            memcpy(all + n, cs[i].lat[k], cs[i].n * sizeof(double)), n += cs[i].n;
        qsort(all, n, sizeof(double), by_value);
        printf(", \"%s_p50\": %.3f, \"%s_p99\": %.3f", NAMES[merchant][k], pct(all, n, 0.5),
               NAMES[merchant][k], pct(all, n, 0.99));
        free(all);
    }
    printf("}\n");
    return 0;
}
