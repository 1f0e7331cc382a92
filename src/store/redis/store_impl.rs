//! The store contract (`Store`) on Redis: each method sends its write to the commit task, or
//! reads on the store's runtime (`RedisStore::spawn`), through the modules of `redis`.

use super::*;

impl Store for RedisStore {
    fn sticky(&self, epoch: &Epoch, unit: &str) -> StoreFuture<Option<StickyRecord>> {
        if let Some(record) = self.shared.cache_get(epoch, unit) {
            return Box::pin(async move { Ok(Some(record)) });
        }
        let (shared, epoch, unit) = (self.shared.clone(), epoch.clone(), unit.to_owned());
        self.spawn(async move {
            let record = read::sticky(&shared, &epoch, &unit).await?;
            if let Some(record) = &record {
                shared.cache_put(&epoch, &unit, record);
            }
            Ok(record)
        })
    }

    /// A unit in the replica's cache is known; any other is unseen: `apply.lua`'s insert
    /// answers the record a unit already holds, so a new unit costs one round trip (the insert)
    /// instead of a lookup and then the insert. Without a cache every unit would be unseen and
    /// a returning one would pay a script call in a group commit instead of one lookup, so then
    /// the engine reads first, as before.
    fn sticky_cached(&self, epoch: &Epoch, unit: &str) -> crate::store::StickyLookup {
        if self.shared.cache.capacity() == 0 {
            return crate::store::StickyLookup::Read;
        }
        match self.shared.cache_get(epoch, unit) {
            Some(record) => crate::store::StickyLookup::Known(record),
            None => crate::store::StickyLookup::Unseen,
        }
    }

    fn insert_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        record: StickyRecord,
        tally: Tally,
    ) -> StoreFuture<(StickyRecord, bool)> {
        let (epoch, unit) = (epoch.clone(), unit.to_owned());
        self.send(|reply| Command::Insert {
            epoch,
            unit,
            record,
            tally,
            reply,
        })
    }

    fn reassign_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        from_variant: &str,
        record: StickyRecord,
        tally: Tally,
    ) -> StoreFuture<Option<(StickyRecord, bool)>> {
        let (epoch, unit, from) = (epoch.clone(), unit.to_owned(), from_variant.to_owned());
        self.send(|reply| Command::Reassign {
            epoch,
            unit,
            from,
            record,
            tally,
            reply,
        })
    }

    fn count_exposure(&self, epoch: &Epoch, variant: &str, tally: Tally) -> bool {
        if !self.shared.health.writable() {
            return false;
        }
        let allocation = Arc::as_ptr(&tally.allocation).cast::<()>() as usize;
        let mut exposures = lock(&self.shared.exposures);
        let found = exposure_key::Borrowed {
            epoch,
            variant,
            allocation,
            now_ms: tally.now_ms,
            half_life_ms: tally.half_life_ms,
        };
        if let Some(group) = exposures.get_mut(&found as &dyn exposure_key::KeyFields) {
            group.count += 1;
            return true;
        }
        let key = ExposureKey {
            epoch: epoch.clone(),
            variant: variant.to_owned(),
            allocation,
            now_ms: tally.now_ms,
            half_life_ms: tally.half_life_ms,
        };
        let group = exposures.entry(key).or_insert_with(|| ExposureGroup {
            epoch: epoch.clone(),
            variant: variant.to_owned(),
            tally,
            count: 0,
        });
        group.count += 1;
        true
    }

    fn apply_rewards(&self, ops: Vec<RewardOp>) -> StoreFuture<Vec<RewardOutcome>> {
        if ops.is_empty() {
            return Box::pin(async { Ok(Vec::new()) });
        }
        self.send(|reply| Command::Rewards { ops, reply })
    }

    fn confirm_tokens(&self, ops: Vec<ConfirmOp>) -> StoreFuture<Vec<ConfirmOutcome>> {
        if ops.is_empty() {
            return Box::pin(async { Ok(Vec::new()) });
        }
        let shared = self.shared.clone();
        self.spawn(async move {
            let outcomes = confirm::confirm(&shared, ops).await?;
            wait::acknowledged(&shared, &wait::Written::everywhere()).await?;
            Ok(outcomes)
        })
    }

    fn scan_token_confirmations(
        &self,
        epoch: &Epoch,
        after_id: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<TokenConfirmation>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::scan_confirmations(&shared, &epoch, after_id, limit).await })
    }

    fn counters(&self, epoch: &Epoch) -> StoreFuture<HashMap<String, ArmCounters>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::counters(&shared, &epoch).await })
    }

    fn delay_histograms(&self, epoch: &Epoch) -> StoreFuture<HashMap<String, DelayHistograms>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { delays::delay_histograms(&shared, &epoch).await })
    }

    fn epoch_info(&self, epoch: &Epoch) -> StoreFuture<EpochInfo> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::epoch_info(&shared, &epoch).await })
    }

    fn record_decision(&self, epoch: &Epoch, decision: Decision) -> StoreFuture<Decision> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move {
            let held = read::record_decision(&shared, &epoch, decision).await?;
            wait::acknowledged(&shared, &wait::Written::at(&layout::info_key(&epoch))).await?;
            Ok(held)
        })
    }

    fn record_halt(
        &self,
        epoch: &Epoch,
        halt: crate::store::Halt,
    ) -> StoreFuture<crate::store::Halt> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move {
            let held = halts::record(&shared, &epoch, halt).await?;
            wait::acknowledged(&shared, &wait::Written::at(&layout::halts_key(&epoch))).await?;
            Ok(held)
        })
    }

    fn halts(&self, epoch: &Epoch) -> StoreFuture<Vec<crate::store::Halt>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { halts::read(&shared, &epoch).await })
    }

    fn append_history(&self, epoch: &Epoch, point: HistoryPoint) -> StoreFuture<()> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::append_history(&shared, &epoch, point).await })
    }

    fn history(
        &self,
        epoch: &Epoch,
        since_ms: u64,
        limit: usize,
    ) -> StoreFuture<Vec<HistoryPoint>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::history(&shared, &epoch, since_ms, limit, false).await })
    }

    fn history_newest_first(
        &self,
        epoch: &Epoch,
        since_ms: u64,
        limit: usize,
    ) -> StoreFuture<Vec<HistoryPoint>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::history(&shared, &epoch, since_ms, limit, true).await })
    }

    fn record_epoch_spec(&self, epoch: &Epoch, spec: EpochSpec) -> StoreFuture<()> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::record_epoch_spec(&shared, &epoch, spec).await })
    }

    fn epoch_spec(&self, epoch: &Epoch) -> StoreFuture<Option<EpochSpec>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::epoch_spec(&shared, &epoch).await })
    }

    fn scan_sticky(
        &self,
        epoch: &Epoch,
        after_unit: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<(String, StickyRecord)>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::scan_sticky(&shared, &epoch, after_unit, limit).await })
    }

    /// By assignment id: the cursor is the last id of a full page.
    fn scan_token_credits(
        &self,
        epoch: &Epoch,
        after: Option<String>,
        limit: usize,
    ) -> StoreFuture<TokenCreditPage> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move {
            let credits = read::scan_marks(&shared, &epoch, after, limit).await?;
            let next = (credits.len() >= limit)
                .then(|| credits.last().map(|credit| credit.assignment_id.clone()))
                .flatten();
            Ok(TokenCreditPage { credits, next })
        })
    }

    fn expire(&self, now_ms: u64) -> StoreFuture<u64> {
        let shared = self.shared.clone();
        self.spawn(async move { read::expire(&shared, now_ms).await })
    }

    /// Generated once and kept in Redis (`SET NX`), so every replica signs and verifies with
    /// the same key. Anybody who can read Redis can read it: see the README ("Scaling out")
    /// for the protection rules, or pass `--token-secret` to keep it out of Redis.
    fn secret(&self, name: &str, make: SecretMaker) -> StoreFuture<Vec<u8>> {
        let (shared, key) = (self.shared.clone(), layout::secret_key(name));
        self.spawn(async move { read::secret(&shared, &key, make()).await })
    }

    fn stats(&self) -> StoreStats {
        let commits = self.shared.commits.load(Ordering::Relaxed);
        StoreStats {
            commits,
            durable_position: commits,
            backend: BackendStats::Redis {
                sticky_cache: StickyCacheStats {
                    capacity: self.shared.cache.capacity(),
                    entries: self.shared.cache.len(),
                    hits: self.shared.hits.load(Ordering::Relaxed),
                    misses: self.shared.misses.load(Ordering::Relaxed),
                },
                exposure_flush_ms: FLUSH_EVERY_MS,
                commits: self.shared.commit_stats(),
            },
        }
    }

    /// Recomputes every counter from the records (see `read::audit`).
    fn audit(&self) -> StoreFuture<AuditReport> {
        let shared = self.shared.clone();
        self.spawn(async move { read::audit(&shared).await })
    }

    fn writable(&self) -> bool {
        self.shared.health.writable()
    }

    fn health(&self) -> StoreHealth {
        self.shared.health.snapshot()
    }

    fn announce(&self, report: ReplicaReport, expires_ms: u64) -> StoreFuture<()> {
        let shared = self.shared.clone();
        self.spawn(async move {
            let mut connection = shared.link.get();
            replicas::announce(&mut connection, &report, expires_ms)
                .await
                .map_err(|error| replica_error(&shared, error))
        })
    }

    fn withdraw(&self, id: &str) -> StoreFuture<()> {
        let (shared, id) = (self.shared.clone(), id.to_owned());
        self.spawn(async move {
            let mut connection = shared.link.get();
            replicas::withdraw(&mut connection, &id)
                .await
                .map_err(|error| replica_error(&shared, error))
        })
    }

    fn replicas(&self, now_ms: u64) -> StoreFuture<Vec<ReplicaReport>> {
        let shared = self.shared.clone();
        self.spawn(async move {
            let mut connection = shared.link.get();
            replicas::live(&mut connection, now_ms)
                .await
                .map_err(|error| replica_error(&shared, error))
        })
    }

    fn shutdown(&self) -> StoreFuture<()> {
        self.send(|reply| Command::Shutdown { reply })
    }
}
