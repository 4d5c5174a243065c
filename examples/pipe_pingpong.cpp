// pipe_pingpong — a parent and a child exchange typed messages over a Pipe.
//
// Python:
//   def player(conn):
//       while True:
//           try: msg = conn.recv()
//           except EOFError: return
//           conn.send(Ball(msg.hits + 1, 'pong') if isinstance(msg, Ball) else history)
//   parent_end, child_end = Pipe(); p = Process(target=player, args=(child_end,)); p.start()
//   for i in range(5): parent_end.send(Ball(...)); ball = parent_end.recv()
//   parent_end.close(); p.join()
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mproc/codec/variant.hpp>
#include <mproc/pipe.hpp>
#include <mproc/process.hpp>
#include <string>
#include <utility>
#include <variant>
#include <vector>

struct Ball {  // trivially copyable: sent as its bytes
  int hits;
  char shout[8];
};

// What the parent sends: a ball to return, or a question ("history?").
using ToChild = std::variant<Ball, std::string>;

int main() {
  using namespace std::chrono_literals;
  auto pipe = mproc::Pipe();
  mproc::Connection& parent_end = pipe.first;

  // The child's end is moved into the process: start() closes the parent's copy of it.
  mproc::Process player(
      [&parent_end](mproc::Connection conn) {
        // The child does not use the parent's end. Close its inherited copy, or the EOF that ends
        // the game below would never come (the end would still be open, here).
        parent_end.close();
        std::vector<int> history;
        for (;;) {
          ToChild msg;
          try {
            msg = conn.recv<ToChild>();
          } catch (const mproc::EOFError&) {
            return 0;  // the parent closed its end: game over
          }
          if (auto* ball = std::get_if<Ball>(&msg)) {
            history.push_back(ball->hits);
            Ball back{ball->hits + 1, "pong"};
            conn.send(back);
          } else {
            conn.send(history);
          }
        }
      },
      std::move(pipe.second));
  player.start();

  Ball ball{0, "ping"};
  for (int round = 0; round < 5; ++round) {
    parent_end.send(ToChild(ball));
    // Wait for the reply, or for the child to die: whichever comes first.
    auto ready = mproc::wait({parent_end, player}, 10s);
    if (ready.empty() || ready.front() != 0) {
      std::fprintf(stderr, "no reply from the player\n");
      return 1;
    }
    Ball reply = parent_end.recv<Ball>();
    std::printf("sent %s with %d hits, got %s with %d hits\n", ball.shout, ball.hits, reply.shout,
                reply.hits);
    ball = Ball{reply.hits + 1, "ping"};
  }

  parent_end.send(ToChild(std::string("history?")));
  auto history = parent_end.recv<std::vector<int>>(10s);
  if (!history) return 1;
  std::printf("the player saw hits:");
  for (int h : *history) std::printf(" %d", h);
  std::printf("\n");

  parent_end.close();  // the player's recv now throws EOFError and it returns 0
  player.join();
  std::printf("player exited with code %d\n", *player.exitcode());
  return history->size() == 5 && *player.exitcode() == 0 ? 0 : 1;
}
