// process_hello — start a process that greets from its own pid, then report its exit code.
//
// Mirrors the first example of Python's multiprocessing documentation:
//
//   def f(name): print('hello', name, 'from', current_process().name, os.getpid())
//   p = Process(target=f, args=('bob',)); p.start(); p.join(); print(p.exitcode)
#include <iostream>
#include <mproc/process.hpp>
#include <string>

int main() {
  mproc::Process p(
      [](const std::string& who) {
        const auto me = mproc::current_process();
        std::cout << "hello " << who << " from " << me.name() << " (pid " << me.pid() << ")"
                  << std::endl;
      },
      std::string("bob"));
  p.start();
  p.join();
  std::cout << p.name() << " (pid " << *p.pid() << ") exited with code " << *p.exitcode()
            << std::endl;
  return *p.exitcode() == 0 ? 0 : 1;
}
