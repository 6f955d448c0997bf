#!/usr/bin/python3
# ref.py - recompute the case printed by dump.c (read from case.py) with torch autograd,
# following the reference code's formulas, and print both answers. Needs Debian's python3.
import torch, torch.nn.functional as F
exec(open('case.py').read())
libL1, libL2, libCE, libKL = L1, L2, CE, KL
es_t=torch.tensor(es,dtype=torch.float64).view(N,DS).requires_grad_()
et_t=torch.tensor(et,dtype=torch.float64).view(N,DT)
labt=torch.tensor(lab)
s=F.normalize(es_t,p=2,dim=1); t=F.normalize(et_t,p=2,dim=1)
Dm=torch.cdist(s.detach(),s.detach())
A=[];Pp=[];Nn=[]
for a in range(N):
  for p in range(N):
    if p==a or lab[p]!=lab[a]: continue
    for n in range(N):
      if lab[n]==lab[a]: continue
      m=Dm[a,n]-Dm[a,p]
      if 0<m<0.5: A.append(a);Pp.append(p);Nn.append(n)
A=torch.tensor(A);Pp=torch.tensor(Pp);Nn=torch.tensor(Nn)
tap=torch.norm(t[A]-t[Pp],dim=1); tan=torch.norm(t[A]-t[Nn],dim=1)
sap=torch.norm(s[A]-s[Pp],dim=1); san=torch.norm(s[A]-s[Nn],dim=1)
tp=torch.sigmoid((tan-tap)/4); sp=torch.sigmoid((san-sap)/4)
tpa=torch.cat([tp.unsqueeze(1),1-tp.unsqueeze(1)]); spa=torch.cat([sp.unsqueeze(1),1-sp.unsqueeze(1)])
l1=1000*F.kl_div(torch.log(spa),tpa,reduction='batchmean')
l1.backward()
g=es_t.grad.view(-1)
print("stage1: T torch %d lib %d; L1 torch %.10g lib %.10g; max|grad diff| %.3g (max|grad| %.3g)"%(
  len(A),T,l1.item(),libL1,(g-torch.tensor(de,dtype=torch.float64)).abs().max().item(),g.abs().max().item()))
# stage 2 (per-batch centres)
f_t=torch.tensor(f,dtype=torch.float64).view(N,NC).requires_grad_()
n_classes=NC
cc=torch.zeros(NC,DT,dtype=torch.float64)
for k in range(NC):
  idx=labt==k
  if idx.any(): cc[k]=et_t[idx].mean(0)
cib=(labt==torch.arange(NC).unsqueeze(1)).any(dim=1)
cc=F.normalize(cc,p=2,dim=1)[cib]
tl=et_t@cc.t()
ce=F.cross_entropy(f_t,labt)
kl=F.kl_div(F.log_softmax(f_t[:,cib]/2,dim=1),F.softmax(tl/2,dim=1),reduction='batchmean')
l2=ce+100*kl; l2.backward()
g2=f_t.grad.view(-1)
print("stage2: L2 torch %.10g lib %.10g; CE %.10g/%.10g; KL %.10g/%.10g; max|grad diff| %.3g (max|grad| %.3g)"%(
  l2.item(),libL2,ce.item(),libCE,kl.item(),libKL,(g2-torch.tensor(df,dtype=torch.float64)).abs().max().item(),g2.abs().max().item()))
