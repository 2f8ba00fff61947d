// flarebench: the load generator and the receiver of bench/e2e.py, so that neither side
// of a measurement is Python (a Python client saturates before Flare does, DESIGN.md).
// Standard library only; built by the bench into var/ on first use.
//
//	flarebench put -target URL[,URL...] -prefix DOCURL -n N [-start I] [-revision R] [-workers W | -rate R] -out FILE
//	flarebench subscribe -target URL[,URL...] -resource RID -sink URL -n N -workers W -out FILE
//	flarebench receive -listen 127.0.0.1:PORT
//
// Times are wall-clock nanoseconds (CLOCK_REALTIME), comparable across processes on one
// machine. put and subscribe print one JSON summary line on stdout and write one JSON line
// per request to -out; with several -target URLs (one per Flare process of one app id),
// request i goes to URL i mod count. receive answers 200 at once and keeps (arrival, path, revision) per
// request, served by GET /_count, POST /_dump?file=F (JSON lines) and POST /_reset.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: flarebench put|subscribe|receive ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "put":
		put(os.Args[2:])
	case "subscribe":
		subscribe(os.Args[2:])
	case "receive":
		receive(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func client(workers int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			MaxIdleConns: workers * 2, MaxIdleConnsPerHost: workers * 2, MaxConnsPerHost: 0,
			DisableCompression: true, IdleConnTimeout: 90 * time.Second,
			DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		},
		Timeout: 60 * time.Second,
	}
}

// One request's timing: when it was sent and when its answer came (ns since the epoch).
type result struct {
	I      int   `json:"i"`
	Sent   int64 `json:"sent"`
	Done   int64 `json:"done"`
	Status int   `json:"status"`
}

type summary struct {
	Requests  int            `json:"requests"`
	Statuses  map[string]int `json:"statuses"`
	FirstSent int64          `json:"first_sent"`
	LastDone  int64          `json:"last_done"`
	PerSecond float64        `json:"per_second"`
	CPUUser   float64        `json:"cpu_user_s"`
	CPUSys    float64        `json:"cpu_sys_s"`
}

// run sends n requests made by build: with rate > 0 one is started every 1/rate seconds
// (open loop: a slow answer does not delay the next), else workers closed loops.
func run(n, workers int, rate float64, build func(i int) (*http.Request, error), out string) {
	c := client(workers)
	results := make([]result, n)
	var failures atomic.Int64 // the first few are printed on stderr
	one := func(i int) {
		req, err := build(i)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sent := time.Now().UnixNano()
		status := 0
		resp, err := c.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
			if status >= 300 && failures.Add(1) <= 5 {
				fmt.Fprintf(os.Stderr, "%s %s: %d %s\n", req.Method, req.URL, status, body)
			}
		} else if failures.Add(1) <= 5 {
			fmt.Fprintf(os.Stderr, "%s %s: %v\n", req.Method, req.URL, err)
		}
		results[i] = result{I: i, Sent: sent, Done: time.Now().UnixNano(), Status: status}
	}
	var wg sync.WaitGroup
	if rate > 0 {
		start := time.Now()
		for i := 0; i < n; i++ {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * 1e9))); d > 0 {
				time.Sleep(d)
			}
			wg.Add(1)
			go func(i int) { defer wg.Done(); one(i) }(i)
		}
	} else {
		var next int64 = -1
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(atomic.AddInt64(&next, 1))
					if i >= n {
						return
					}
					one(i)
				}
			}()
		}
	}
	wg.Wait()
	s := summary{Requests: n, Statuses: map[string]int{}}
	f, err := os.Create(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, r := range results {
		s.Statuses[strconv.Itoa(r.Status)]++
		if s.FirstSent == 0 || r.Sent < s.FirstSent {
			s.FirstSent = r.Sent
		}
		if r.Done > s.LastDone {
			s.LastDone = r.Done
		}
		enc.Encode(r)
	}
	w.Flush()
	f.Close()
	if s.LastDone > s.FirstSent {
		s.PerSecond = float64(n) / (float64(s.LastDone-s.FirstSent) / 1e9)
	}
	s.CPUUser, s.CPUSys = cpu()
	json.NewEncoder(os.Stdout).Encode(s)
}

// A document of about 250 bytes, the shape of bench/workload.py's.
func document(i, revision int) []byte {
	roles := `["reader"]`
	if i%2 == 1 {
		roles = `["reader","writer"]`
	}
	return []byte(fmt.Sprintf(`{"id":%d,"version":%d,"name":"User number %d","email":"user%d@example.com",`+
		`"active":%t,"roles":%s,"address":{"street":"%d Main Street","city":"Springfield","zip":"%05d"},"score":%g}`,
		i, revision, i, i, i%3 != 0, roles, i, i%100000, float64(i)*1.5))
}

func put(args []string) {
	fs := flag.NewFlagSet("put", flag.ExitOnError)
	target := fs.String("target", "", "Flare's base URLs, comma-separated")
	prefix := fs.String("prefix", "http://e2e.test/users/", "document URL before the number")
	n := fs.Int("n", 1000, "documents to PUT")
	start := fs.Int("start", 0, "number of the first document")
	revision := fs.Int("revision", 1, "revision of every document")
	workers := fs.Int("workers", 32, "closed-loop workers (when -rate is 0)")
	rate := fs.Float64("rate", 0, "requests per second, open loop (0: as fast as the workers go)")
	out := fs.String("out", "put.jsonl", "one JSON line per request")
	fs.Parse(args)
	targets := strings.Split(*target, ",")
	run(*n, *workers, *rate, func(i int) (*http.Request, error) {
		doc := *start + i
		req, err := http.NewRequest("PUT", targets[i%len(targets)]+"/documents/"+*prefix+strconv.Itoa(doc),
			bytes.NewReader(document(doc, *revision)))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}, *out)
}

func subscribe(args []string) {
	fs := flag.NewFlagSet("subscribe", flag.ExitOnError)
	target := fs.String("target", "", "Flare's base URLs, comma-separated")
	resource := fs.String("resource", "", "resource id")
	sink := fs.String("sink", "", "receiver base URL")
	n := fs.Int("n", 1000, "subscriptions to create")
	workers := fs.Int("workers", 32, "closed-loop workers")
	out := fs.String("out", "subscribe.jsonl", "one JSON line per request")
	fs.Parse(args)
	targets := strings.Split(*target, ",")
	run(*n, *workers, 0, func(i int) (*http.Request, error) {
		body := fmt.Sprintf(`{"endpoint":{"url":"%s/f%d/{id}","method":"post"},"delivery":{"success":[200],"discard":[410]}}`,
			*sink, i)
		req, err := http.NewRequest("POST", targets[i%len(targets)]+"/resources/"+*resource+"/subscriptions",
			bytes.NewReader([]byte(body)))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}, *out)
}

// cpu: this process's user and system CPU seconds (getrusage via /proc/self/stat).
func cpu() (float64, float64) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0
	}
	at := bytes.LastIndexByte(data, ')')
	fields := bytes.Fields(data[at+1:])
	user, _ := strconv.ParseFloat(string(fields[11]), 64)
	sys, _ := strconv.ParseFloat(string(fields[12]), 64)
	return user / 100, sys / 100 // USER_HZ is 100 on Linux
}

type arrival struct {
	At       int64  `json:"at"`
	Path     string `json:"path"`
	Revision int64  `json:"revision"`
	Action   string `json:"action"`
}

type envelope struct {
	Action   string `json:"action"`
	Document struct {
		Version int64 `json:"version"`
	} `json:"document"`
}

func receive(args []string) {
	fs := flag.NewFlagSet("receive", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	fs.Parse(args)
	var mu sync.Mutex
	arrivals := make([]arrival, 0, 1<<17)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_count", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		count := len(arrivals)
		mu.Unlock()
		fmt.Fprintf(w, "%d", count)
	})
	mux.HandleFunc("POST /_reset", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = arrivals[:0]
		mu.Unlock()
		w.WriteHeader(204)
	})
	mux.HandleFunc("POST /_dump", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		taken := append([]arrival(nil), arrivals...)
		mu.Unlock()
		f, err := os.Create(r.URL.Query().Get("file"))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		b := bufio.NewWriter(f)
		enc := json.NewEncoder(b)
		for _, a := range taken {
			enc.Encode(a)
		}
		b.Flush()
		f.Close()
		user, sys := cpu()
		fmt.Fprintf(w, `{"count":%d,"cpu_user_s":%g,"cpu_sys_s":%g}`, len(taken), user, sys)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		at := time.Now().UnixNano()
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(200)
		var env envelope
		json.Unmarshal(body, &env) // a body that is no envelope keeps revision 0
		mu.Lock()
		arrivals = append(arrivals, arrival{At: at, Path: r.URL.Path, Revision: env.Document.Version,
			Action: env.Action})
		mu.Unlock()
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	http.Serve(ln, mux)
}
