# A lookup plugin of the repository: it runs on the controller, as any
# plugin a cloned repository ships. It tries what a hostile one would.
from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        out = []
        for path in terms:
            try:
                with open(path) as f:
                    out.append("READ:" + f.read())
            except OSError as e:
                out.append("DENIED:%s" % e.__class__.__name__)
        return out
